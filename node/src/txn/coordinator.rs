//! A shard's transaction coordinator: its transactions in memory, each change committed to
//! `__transaction_state` before it takes effect, the markers of decided transactions, and the
//! ticker (loading newly led partitions, resuming decided transactions, aborting timed-out
//! ones).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::records::Record;
use tracing::{debug, info, warn};

use super::records::{parse_key, parse_value, partition_for, txn_key, txn_value};
use super::state::{self, End, Init, TxnMeta, TxnState};
use super::{Markers, TxnHost};
use crate::error;
use crate::group::store::{OFFSETS_COMMIT_TIMEOUT, now_ms, read_batches};
use crate::partition::Durability;

/// How often the ticker looks for partitions to load or forget and decided transactions to
/// finish (open transactions are checked against their timeout every
/// [`super::TxnSettings::abort_check_interval`]).
pub const TICK: Duration = Duration::from_millis(500);
/// How long AddPartitionsToTxn waits for a transactional id busy with its previous
/// transaction's markers before answering CONCURRENT_TRANSACTIONS.
pub const CONCURRENT_WAIT: Duration = Duration::from_millis(500);
/// Tries of one marker-writing task before it leaves the transaction to the ticker.
const MARKER_TRIES: u32 = 20;
const MARKER_BACKOFF_MIN: Duration = Duration::from_millis(20);
const MARKER_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One transactional id as its coordinator holds it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub meta: TxnMeta,
    /// Its `__transaction_state` partition.
    pub partition: i32,
}

/// The transactions one shard coordinates.
#[derive(Debug, Default)]
pub struct Transactions {
    pub txns: HashMap<String, Entry>,
    /// Ids with a change or marker task under way.
    pub busy: HashSet<String>,
    /// Partitions read back, with the leader epoch they were read at (the coordinator epoch
    /// their markers carry).
    pub loaded: HashMap<i32, i32>,
    /// Notified whenever an id stops being busy.
    pub released: event_listener::Event,
}

impl Transactions {
    /// Marks `id` busy; `false` if it already was.
    fn claim(&mut self, id: &str) -> bool {
        self.busy.insert(id.to_owned())
    }

    /// Forgets the transactions of `partition` (this broker no longer leads it).
    pub fn unload(&mut self, partition: i32) -> usize {
        if self.loaded.remove(&partition).is_none() {
            return 0;
        }
        let before = self.txns.len();
        self.txns.retain(|_, e| e.partition != partition);
        before - self.txns.len()
    }
}

/// Releases a claimed id when dropped, whatever path the holder leaves by.
struct Claim<'a, H: TxnHost> {
    host: &'a H,
    id: String,
}

impl<H: TxnHost> Drop for Claim<'_, H> {
    fn drop(&mut self) {
        let mut txns = self.host.txns().borrow_mut();
        txns.busy.remove(&self.id);
        txns.released.notify(usize::MAX);
    }
}

fn claim<'a, H: TxnHost>(host: &'a H, id: &str) -> Result<Claim<'a, H>, ErrorCode> {
    if host.txns().borrow_mut().claim(id) {
        Ok(Claim { host, id: id.to_owned() })
    } else {
        Err(ec::CONCURRENT_TRANSACTIONS)
    }
}

/// The partition of `id`, once the topic exists.
pub fn home(host: &impl TxnHost, id: &str) -> Result<i32, ErrorCode> {
    let n = host.txn_partition_count().ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
    Ok(partition_for(id, n))
}

/// Reads `__transaction_state` partition `partition` back into memory, once per leadership.
pub async fn ensure_loaded(host: &impl TxnHost, partition: i32) -> Result<(), ErrorCode> {
    let p = host.txn_partition(partition).await?;
    if !p.is_leader() {
        return Err(ec::NOT_COORDINATOR);
    }
    let epoch = p.leader_epoch();
    let loaded = host.txns().borrow().loaded.get(&partition).copied();
    match loaded {
        Some(e) if e == epoch => return Ok(()),
        // Leadership was lost and came back: what was read then may be stale.
        Some(_) => {
            host.txns().borrow_mut().unload(partition);
        }
        None => {}
    }
    let mut found: HashMap<String, Option<TxnMeta>> = HashMap::new();
    read_batches(&p, partition, |header, records| {
        if header.is_control() {
            return;
        }
        for r in records {
            let Some(id) = r.key.as_deref().and_then(parse_key) else { continue };
            let meta = r.value.as_deref().map(parse_value);
            match meta {
                Some(None) => warn!(partition, id, "unreadable transaction record skipped"),
                Some(Some(m)) => {
                    found.insert(id, Some(m));
                }
                None => {
                    found.insert(id, None);
                }
            }
        }
    })
    .await
    .map_err(|e| e.code)?;
    let mut txns = host.txns().borrow_mut();
    if txns.loaded.contains_key(&partition) {
        return Ok(());
    }
    let mut open = 0;
    for (id, meta) in found {
        if let Some(meta) = meta {
            open += usize::from(meta.state == TxnState::Ongoing || meta.state.is_preparing());
            txns.txns.insert(id, Entry { meta, partition });
        }
    }
    txns.loaded.insert(partition, epoch);
    info!(partition, coordinator_epoch = epoch, open, "transaction state loaded");
    Ok(())
}

/// Commits `meta` as the state of `id` to its partition (acks=all), then makes it current.
async fn store(
    host: &impl TxnHost,
    partition: i32,
    id: &str,
    meta: TxnMeta,
) -> Result<(), ErrorCode> {
    let value = txn_value(&meta).map_err(|e| e.error_code())?;
    write(host, partition, id, meta.update_ms, Some(value)).await?;
    let mut txns = host.txns().borrow_mut();
    if txns.loaded.contains_key(&partition) {
        txns.txns.insert(id.to_owned(), Entry { meta, partition });
    }
    Ok(())
}

/// Appends `id`'s record (`None`: its tombstone) to its partition, committed (acks=all), as
/// long as this shard still coordinates the partition at the epoch it read it at.
async fn write(
    host: &impl TxnHost,
    partition: i32,
    id: &str,
    timestamp: i64,
    value: Option<Bytes>,
) -> Result<(), ErrorCode> {
    let key = txn_key(id).map_err(|e| e.error_code())?;
    let record = Record {
        attributes: 0,
        timestamp_delta: 0,
        offset_delta: 0,
        key: Some(key),
        value,
        headers: Vec::new(),
    };
    let batch: Bytes = build_batch(&BatchParams::simple(Codec::None, timestamp, 1), &[record])
        .map_err(|_| ec::UNKNOWN_SERVER_ERROR)?;
    let p = host.txn_partition(partition).await?;
    let loaded_epoch = host.txns().borrow().loaded.get(&partition).copied();
    if loaded_epoch != Some(p.leader_epoch()) {
        // Another leadership began since the partition was read: not ours to change.
        return Err(ec::NOT_COORDINATOR);
    }
    if let Err(e) = p.append(batch, Durability::Committed(OFFSETS_COMMIT_TIMEOUT)).await {
        // The log itself logs a failing disk once; a line per refused request would flood.
        debug!(id, partition, error = %e, "cannot store transaction state");
        // As Kafka's TransactionStateManager: a storage error or a lost leadership sends the
        // producer to find the coordinator again (NOT_COORDINATOR).
        return Err(match error::coordinator_append_failure(&e) {
            c if c == ec::NOT_ENOUGH_REPLICAS || c == ec::REQUEST_TIMED_OUT => {
                ec::COORDINATOR_NOT_AVAILABLE
            }
            c => c,
        });
    }
    Ok(())
}

fn meta_of(host: &impl TxnHost, id: &str) -> Option<TxnMeta> {
    host.txns().borrow().txns.get(id).map(|e| e.meta.clone())
}

/// InitProducerId with a transactional id: the producer id and epoch to use, after fencing
/// the previous producer of `id` (its open transaction is aborted first:
/// CONCURRENT_TRANSACTIONS until that is done).
pub async fn init_producer_id<H: TxnHost + Clone + 'static>(
    host: &H,
    id: &str,
    timeout_ms: i32,
    producer_id: i64,
    epoch: i16,
) -> Result<(i64, i16), ErrorCode> {
    if timeout_ms <= 0 || timeout_ms > host.txn_settings().max_timeout_ms {
        return Err(ec::INVALID_TRANSACTION_TIMEOUT);
    }
    let partition = home(host, id)?;
    ensure_loaded(host, partition).await?;
    let held = claim(host, id)?;
    let now = now_ms();
    match state::init(meta_of(host, id).as_ref(), producer_id, epoch, timeout_ms, now)? {
        Init::Store(mut m) => {
            if m.producer_id < 0 {
                m.producer_id = host.allocate_producer_id().await?;
            }
            let answer = (m.producer_id, m.epoch);
            store(host, partition, id, m).await?;
            info!(
                id,
                producer_id = answer.0,
                epoch = answer.1,
                "transactional producer initialized"
            );
            Ok(answer)
        }
        Init::FenceAndAbort(m) => {
            info!(
                id,
                producer_id = m.producer_id,
                epoch = m.epoch,
                "a new producer fences the open transaction; aborting it"
            );
            store(host, partition, id, m).await?;
            drop(held);
            spawn_completion(host, id);
            Err(ec::CONCURRENT_TRANSACTIONS)
        }
    }
}

/// AddPartitionsToTxn and AddOffsetsToTxn: adds `partitions` to the ongoing transaction.
///
/// A producer's next transaction usually begins while the markers of its last are still being
/// written (EndTxn is answered once the decision is durable). Instead of answering
/// CONCURRENT_TRANSACTIONS at once, which clients retry only after a back-off, the request
/// waits up to [`CONCURRENT_WAIT`] for the id to be free.
pub async fn add_partitions(
    host: &impl TxnHost,
    id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
) -> Result<(), ErrorCode> {
    let partition = home(host, id)?;
    ensure_loaded(host, partition).await?;
    let deadline = Instant::now() + CONCURRENT_WAIT;
    loop {
        let released = host.txns().borrow().released.listen();
        match try_add_partitions(host, partition, id, (producer_id, epoch), partitions).await {
            Err(code) if code == ec::CONCURRENT_TRANSACTIONS && Instant::now() < deadline => {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = compio::time::timeout(left, released).await;
            }
            result => return result,
        }
    }
}

async fn try_add_partitions(
    host: &impl TxnHost,
    partition: i32,
    id: &str,
    (producer_id, epoch): (i64, i16),
    partitions: &[(String, i32)],
) -> Result<(), ErrorCode> {
    let _held = claim(host, id)?;
    let m = meta_of(host, id).ok_or(ec::INVALID_PRODUCER_ID_MAPPING)?;
    match state::add_partitions(&m, producer_id, epoch, partitions, now_ms())? {
        None => Ok(()),
        Some(next) => store(host, partition, id, next).await,
    }
}

/// KIP-890's check before a transactional batch is appended: `topic`-`index` was added to
/// `id`'s ongoing transaction by this producer at this epoch.
pub async fn verify(
    host: &impl TxnHost,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    index: i32,
) -> Result<(), ErrorCode> {
    let partition = home(host, id)?;
    ensure_loaded(host, partition).await?;
    let m = meta_of(host, id).ok_or(ec::INVALID_PRODUCER_ID_MAPPING)?;
    if m.producer_id != producer_id {
        return Err(ec::INVALID_PRODUCER_ID_MAPPING);
    }
    if m.epoch != epoch {
        return Err(ec::INVALID_PRODUCER_EPOCH);
    }
    let added = m.partitions.iter().any(|(t, p)| t == topic && *p == index);
    if m.state == TxnState::Ongoing && added { Ok(()) } else { Err(ec::INVALID_TXN_STATE) }
}

/// EndTxn: decides the transaction (durably), answers, and has its markers written.
pub async fn end_txn<H: TxnHost + Clone + 'static>(
    host: &H,
    id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<(), ErrorCode> {
    let partition = home(host, id)?;
    ensure_loaded(host, partition).await?;
    let held = claim(host, id)?;
    let m = meta_of(host, id).ok_or(ec::INVALID_PRODUCER_ID_MAPPING)?;
    match state::end(&m, producer_id, epoch, commit, now_ms())? {
        End::Done => Ok(()),
        End::Prepare(next) => {
            store(host, partition, id, next).await?;
            drop(held);
            spawn_completion(host, id);
            Ok(())
        }
    }
}

/// Starts the task writing the markers of `id`'s decided transaction (unless one runs).
fn spawn_completion<H: TxnHost + Clone + 'static>(host: &H, id: &str) {
    if !host.txns().borrow_mut().claim(id) {
        return;
    }
    let (host, id) = (host.clone(), id.to_owned());
    compio::runtime::spawn(async move {
        // The claim taken above, released when the task ends.
        let _held = Claim { host: &host, id: id.clone() };
        complete(&host, &id).await;
    })
    .detach();
}

/// Writes the markers of `id`'s decided transaction and, once all are written, commits its
/// completion. Bounded: after [`MARKER_TRIES`] the transaction stays decided and the ticker
/// starts again later.
async fn complete(host: &impl TxnHost, id: &str) {
    let mut backoff = MARKER_BACKOFF_MIN;
    let mut remaining: Option<Vec<(String, i32)>> = None;
    for attempt in 0..MARKER_TRIES {
        if host.stopping() {
            return;
        }
        let (m, partition, coordinator_epoch) = {
            let txns = host.txns().borrow();
            let Some(e) = txns.txns.get(id) else { return };
            let Some(&epoch) = txns.loaded.get(&e.partition) else { return };
            (e.meta.clone(), e.partition, epoch)
        };
        if !m.state.is_preparing() {
            return;
        }
        let todo = remaining.take().unwrap_or_else(|| m.partitions.iter().cloned().collect());
        let markers = Markers {
            producer_id: m.producer_id,
            epoch: m.epoch,
            commit: markers_commit(&m),
            coordinator_epoch,
            partitions: todo,
        };
        let left = if markers.partitions.is_empty() {
            Vec::new()
        } else {
            host.write_markers(markers).await
        };
        if left.is_empty() {
            let done = state::completed(&m, now_ms());
            match store(host, partition, id, done).await {
                Ok(()) => {
                    debug!(id, state = m.state.name(), "transaction completed");
                    let stats = host.stats();
                    let counter =
                        if markers_commit(&m) { &stats.txn_commits } else { &stats.txn_aborts };
                    crate::metrics::ShardStats::add(counter, 1);
                    return;
                }
                Err(code) if code == ec::NOT_COORDINATOR => return,
                Err(code) => debug!(id, %code, attempt, "cannot store a completed transaction"),
            }
        } else {
            debug!(id, attempt, left = left.len(), "markers not written yet; trying again");
            remaining = Some(left);
        }
        compio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MARKER_BACKOFF_MAX);
    }
    warn!(id, tries = MARKER_TRIES, "markers still not written; the ticker tries again");
}

/// The coordinator's ticker, until the shard stops: reads newly led partitions, forgets those
/// no longer led, finishes decided transactions nobody is finishing, and aborts open ones past
/// their timeout.
pub async fn tick<H: TxnHost + Clone + 'static>(host: H) {
    let mut last_abort_check = Instant::now();
    while !host.stopping() {
        compio::time::sleep(TICK).await;
        let owned = host.owned_txn_partitions();
        let loaded: Vec<i32> = host.txns().borrow().loaded.keys().copied().collect();
        for p in loaded.iter().filter(|p| !owned.contains(p)) {
            let n = host.txns().borrow_mut().unload(*p);
            info!(
                partition = *p,
                transactions = n,
                "no longer the transaction coordinator of this partition"
            );
        }
        for p in &owned {
            if let Err(code) = ensure_loaded(&host, *p).await {
                debug!(partition = *p, %code, "transaction state not loaded yet");
            }
        }
        let check_timeouts = last_abort_check.elapsed() >= host.txn_settings().abort_check_interval;
        if check_timeouts {
            last_abort_check = Instant::now();
        }
        let now = now_ms();
        let todo: Vec<(String, TxnMeta, i32)> = {
            let txns = host.txns().borrow();
            txns.txns
                .iter()
                .filter(|(id, e)| {
                    !txns.busy.contains(*id)
                        && (e.meta.state.is_preparing()
                            || check_timeouts && e.meta.state == TxnState::Ongoing)
                })
                .map(|(id, e)| (id.clone(), e.meta.clone(), e.partition))
                .collect()
        };
        if check_timeouts {
            expire_ids(&host, now).await;
        }
        for (id, m, partition) in todo {
            if m.state.is_preparing() {
                spawn_completion(&host, &id);
                continue;
            }
            let Some(aborted) = state::timed_out(&m, now) else { continue };
            let Ok(held) = claim(&host, &id) else { continue };
            info!(
                id,
                producer_id = m.producer_id,
                timeout_ms = m.timeout_ms,
                "transaction timed out; aborting it"
            );
            let stored = store(&host, partition, &id, aborted).await;
            drop(held);
            match stored {
                Ok(()) => {
                    crate::metrics::ShardStats::add(&host.stats().txn_timeouts, 1);
                    spawn_completion(&host, &id)
                }
                Err(code) => warn!(id, %code, "cannot abort a timed-out transaction"),
            }
        }
    }
}

/// Forgets transactional ids idle (no transaction open or being decided) for longer than
/// [`TRANSACTIONAL_ID_EXPIRATION_MS`], as Kafka's `transactional.id.expiration.ms` does: a
/// tombstone in their partition, then out of memory. Bounds the ids a coordinator holds.
async fn expire_ids<H: TxnHost>(host: &H, now: i64) {
    let idle: Vec<(String, i32, i64)> = {
        let txns = host.txns().borrow();
        txns.txns
            .iter()
            .filter(|(id, e)| {
                let open = e.meta.state == TxnState::Ongoing || e.meta.state.is_preparing();
                !open
                    && !txns.busy.contains(*id)
                    && now.saturating_sub(e.meta.update_ms) > TRANSACTIONAL_ID_EXPIRATION_MS
            })
            .take(EXPIRE_PER_TICK)
            .map(|(id, e)| (id.clone(), e.partition, e.meta.update_ms))
            .collect()
    };
    for (id, partition, updated) in idle {
        let Ok(_held) = claim(host, &id) else { continue };
        // Still idle since it was picked (a request may have come in between).
        let same = host.txns().borrow().txns.get(&id).is_some_and(|e| e.meta.update_ms == updated);
        if !same {
            continue;
        }
        match write(host, partition, &id, now, None).await {
            Ok(()) => {
                host.txns().borrow_mut().txns.remove(&id);
                debug!(id, "transactional id expired");
            }
            Err(code) => debug!(id, %code, "cannot expire a transactional id yet"),
        }
    }
}

/// Kafka's `transactional.id.expiration.ms` default: 7 days.
pub const TRANSACTIONAL_ID_EXPIRATION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Most ids expired per check, so that one check stays short.
const EXPIRE_PER_TICK: usize = 1000;

/// One transaction as DescribeTransactions and ListTransactions show it.
#[derive(Debug, Clone)]
pub struct Described {
    pub id: String,
    pub meta: TxnMeta,
}

/// The transactions of this shard, as they are now.
pub fn all(host: &impl TxnHost) -> Vec<Described> {
    host.txns()
        .borrow()
        .txns
        .iter()
        .map(|(id, e)| Described { id: id.clone(), meta: e.meta.clone() })
        .collect()
}

/// Whether a decided transaction's markers commit it.
fn markers_commit(m: &TxnMeta) -> bool {
    m.state == TxnState::PrepareCommit
}
