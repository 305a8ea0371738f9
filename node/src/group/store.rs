//! Reading a group partition of `__consumer_offsets` back, and writing to it: commits,
//! tombstones and group metadata, each write one batch fsynced before it is made visible or
//! acknowledged. Runs on the shard that owns the partition.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::records::Record;
use tracing::{debug, info, warn};

use super::GroupHost;
use super::records::KeyValue as Kv;
use super::records::{
    Committed, RecordError, group_key, group_value, offset_key, offset_value, partition_for,
};
use crate::error;
use crate::error::KafkaError;
use crate::partition::{Durability, Partition};

/// How long a group's record waits to be committed on every in-sync replica of its
/// `__consumer_offsets` partition (Kafka's `offsets.commit.timeout.ms`).
pub const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_millis(5000);

/// A batch's transactional attribute (bit 4).
const TRANSACTIONAL: i16 = 0x10;

/// Most bytes one read of a group partition returns while loading it.
const LOAD_READ_BYTES: u64 = 1 << 20;

/// One commit: topic, partition, what is committed.
pub type Commit = (String, i32, Committed);

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads group partition `partition` into memory, once per start.
pub async fn ensure_loaded(host: &impl GroupHost, partition: i32) -> Result<(), KafkaError> {
    if host.groups().borrow().loaded.contains(&partition) {
        return Ok(());
    }
    let p = host.offsets_partition(partition).await.map_err(KafkaError::from)?;
    let (records, pending) = read_all(&p, partition).await?;
    let mut groups = host.groups().borrow_mut();
    if groups.loaded.insert(partition) {
        let n = records.len();
        let restored = groups.load(records, Instant::now());
        let undecided = pending.len();
        for (producer_id, records) in pending {
            groups.pending_txn.insert((partition, producer_id), records);
        }
        info!(
            partition,
            records = n,
            groups_restored = restored,
            undecided_transactions = undecided,
            "group offsets loaded"
        );
    }
    Ok(())
}

/// Every keyed record of a group partition, oldest first, up to its log end (as Kafka loads
/// them, since a leader's log is what its followers will have: a new leader's high watermark
/// may still be catching up). Transactional offset commits count once their transaction's
/// COMMIT marker follows them, are dropped at its ABORT, and are returned apart, per producer
/// id, while their transaction is undecided.
async fn read_all(
    p: &Partition,
    partition: i32,
) -> Result<(Vec<Kv>, HashMap<i64, Vec<Kv>>), KafkaError> {
    let mut records = Vec::new();
    let mut pending: HashMap<i64, Vec<Kv>> = HashMap::new();
    read_batches(p, partition, |header, recs| {
        if header.is_control() {
            let txn = pending.remove(&header.producer_id).unwrap_or_default();
            let commit = matches!(recs.first().and_then(|r| r.key.as_deref()), Some([_, _, 0, 1]));
            if commit {
                records.extend(txn);
            }
            return;
        }
        let kvs = recs.into_iter().filter_map(|r| Some((r.key?, r.value)));
        if header.is_transactional() {
            pending.entry(header.producer_id).or_default().extend(kvs);
        } else {
            records.extend(kvs);
        }
    })
    .await?;
    Ok((records, pending))
}

/// Reads partition `p` (of an internal topic, `partition` for the logs) from its log start to
/// its log end, handing each batch's header and records to `visit`, oldest first.
pub async fn read_batches(
    p: &Partition,
    partition: i32,
    mut visit: impl FnMut(&odradek_storage::batch::BatchHeader, Vec<Record>),
) -> Result<(), KafkaError> {
    let mut at = p.log_start_offset();
    let end = p.log_end_offset();
    while at < end {
        let bytes = p.read_bytes(at, LOAD_READ_BYTES).await.map_err(|e| {
            warn!(topic = %p.topic, partition, offset = at, error = %e, "cannot read an internal partition back");
            KafkaError::new(ec::KAFKA_STORAGE_ERROR, e.to_string())
        })?;
        if bytes.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let refuse = |e: String| {
                warn!(topic = %p.topic, partition, offset = at, error = %e, "cannot read an internal partition back");
                KafkaError::new(ec::KAFKA_STORAGE_ERROR, format!("{}-{partition}: {e}", p.topic))
            };
            // One batch at a time: the read returns as many whole batches as fit.
            let len = odradek_storage::batch::BatchHeader::parse(&bytes[pos..])
                .map_err(|e| refuse(e.to_string()))?
                .total_len();
            let Some(batch) = bytes.get(pos..pos + len).map(|_| bytes.slice(pos..pos + len)) else {
                return Err(refuse(format!("a batch of {len} bytes is cut short")));
            };
            let (header, recs) = odradek_storage::compact::batch_records(&batch).map_err(refuse)?;
            visit(&header, recs);
            pos += header.total_len();
            at = header.last_offset() as u64 + 1;
        }
    }
    Ok(())
}

/// Appends `records` (key, value or tombstone) to group partition `partition` as one batch
/// and fsyncs it (acks=all), so a reply sent after it survives a crash.
pub async fn append_synced(
    host: &impl GroupHost,
    partition: i32,
    timestamp: i64,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> Result<(), ErrorCode> {
    append_batch(host, partition, timestamp, records, None).await
}

/// As [`append_synced`]; with `txn` (producer id, epoch) the batch is transactional, written
/// for that producer (its epoch checked by the log: a fenced producer's write is refused).
async fn append_batch(
    host: &impl GroupHost,
    partition: i32,
    timestamp: i64,
    records: Vec<(Bytes, Option<Bytes>)>,
    txn: Option<(i64, i16)>,
) -> Result<(), ErrorCode> {
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: Some(key),
            value,
            headers: Vec::new(),
        })
        .collect();
    let mut params = BatchParams::simple(Codec::None, timestamp, records.len());
    if let Some((producer_id, epoch)) = txn {
        params.producer_id = producer_id;
        params.producer_epoch = epoch;
        params.attributes |= TRANSACTIONAL;
    }
    let batch: Bytes = build_batch(&params, &records).map_err(|_| ec::UNKNOWN_SERVER_ERROR)?;
    let p = host.offsets_partition(partition).await?;
    p.append(batch, Durability::Committed(OFFSETS_COMMIT_TIMEOUT))
        .await
        .map_err(|e| error::coordinator_append_failure(&e))?;
    Ok(())
}

/// Stores `group`'s metadata as it is now (or its tombstone when the group is gone from
/// memory).
pub async fn store_group(host: &impl GroupHost, group: &str) -> Result<(), ErrorCode> {
    let Some(partitions) = host.offsets_partition_count() else {
        return Err(ec::COORDINATOR_NOT_AVAILABLE);
    };
    let partition = partition_for(group, partitions);
    let now = now_ms();
    let value = host.groups().borrow().membership.get(group).map(|g| group_value(&g.stored(now)));
    let record = group_key(group).and_then(|key| Ok((key, value.transpose()?)));
    let record = match record {
        Ok(record) => record,
        Err(e) => {
            warn!(group_bytes = group.len(), partition, error = %e, "group metadata not storable");
            return Err(e.error_code());
        }
    };
    let stored = append_synced(host, partition, now, vec![record]).await;
    if let Err(code) = stored {
        write_failed(group, partition, code, "cannot store group metadata");
    }
    stored
}

/// Logs a failed write to `__consumer_offsets`. NOT_COORDINATOR (a full disk or a lost
/// leadership) is logged once by the log or the partition, so here only at debug: clients
/// retry, and a line per commit would flood the log.
fn write_failed(group: &str, partition: i32, code: ErrorCode, what: &str) {
    if code == ec::NOT_COORDINATOR {
        debug!(group, partition, %code, "{what}");
    } else {
        warn!(group, partition, %code, "{what}");
    }
}

/// The records of `group`'s commits, and the time they carry; refused (nothing written) when
/// a field does not fit its record.
fn commit_records(
    partition: i32,
    group: &str,
    commits: &[Commit],
) -> Result<(i64, Vec<Kv>), ErrorCode> {
    let now = commits.first().map_or(0, |(_, _, c)| c.commit_timestamp);
    let records = commits
        .iter()
        .map(|(t, p, c)| Ok((offset_key(group, t, *p)?, Some(offset_value(c)?))))
        .collect::<Result<Vec<_>, RecordError>>();
    match records {
        Ok(records) => Ok((now, records)),
        Err(e) => {
            warn!(group_bytes = group.len(), partition, error = %e, "commit not storable");
            Err(e.error_code())
        }
    }
}

/// Appends `group`'s commits to its partition as one batch, fsyncs, then makes them visible.
pub async fn write_commits(
    host: &impl GroupHost,
    partition: i32,
    group: &str,
    commits: Vec<Commit>,
) -> Result<(), ErrorCode> {
    let (now, records) = commit_records(partition, group, &commits)?;
    if let Err(code) = append_synced(host, partition, now, records).await {
        write_failed(group, partition, code, "cannot write committed offsets");
        return Err(code);
    }
    let mut groups = host.groups().borrow_mut();
    for (t, p, c) in commits {
        groups.offsets.commit(group, &t, p, c);
    }
    Ok(())
}

/// Writes `group`'s commits made in producer `producer_id`'s transaction (TxnOffsetCommit) as
/// one transactional batch, committed like any; they stay pending, invisible to the group,
/// until the transaction's marker decides them ([`Coordinated::complete_txn`]).
pub async fn write_txn_commits(
    host: &impl GroupHost,
    partition: i32,
    group: &str,
    (producer_id, epoch): (i64, i16),
    commits: Vec<Commit>,
) -> Result<(), ErrorCode> {
    let (now, records) = commit_records(partition, group, &commits)?;
    let txn = Some((producer_id, epoch));
    if let Err(code) = append_batch(host, partition, now, records.clone(), txn).await {
        warn!(group, partition, producer_id, %code, "cannot write transactional offsets");
        return Err(code);
    }
    host.groups()
        .borrow_mut()
        .pending_txn
        .entry((partition, producer_id))
        .or_default()
        .extend(records);
    Ok(())
}

/// Deletes `keys` of `group` (tombstones, fsynced, then forgotten); returns which existed.
pub async fn delete_offsets(
    host: &impl GroupHost,
    partition: i32,
    group: &str,
    keys: Vec<(String, i32)>,
) -> Result<Vec<bool>, ErrorCode> {
    let existed: Vec<bool> = {
        let groups = host.groups().borrow();
        keys.iter().map(|(t, p)| groups.offsets.get(group, t, *p).is_some()).collect()
    };
    let records: Vec<(Bytes, Option<Bytes>)> = keys
        .iter()
        .zip(&existed)
        .filter(|(_, e)| **e)
        .map(|((t, p), _)| Ok((offset_key(group, t, *p)?, None)))
        .collect::<Result<_, RecordError>>()
        .map_err(|e| e.error_code())?;
    if records.is_empty() {
        return Ok(existed);
    }
    append_synced(host, partition, now_ms(), records).await?;
    let mut groups = host.groups().borrow_mut();
    for (t, p) in &keys {
        groups.offsets.remove(group, t, *p);
    }
    Ok(existed)
}

/// Reads every `__consumer_offsets` partition this shard owns, so that its view of the groups
/// is complete.
pub async fn load_all_owned(host: &impl GroupHost) -> Result<(), KafkaError> {
    for p in host.owned_offsets_partitions() {
        ensure_loaded(host, p).await?;
    }
    Ok(())
}
