//! Kafka's `__transaction_state` record layouts, so Kafka's tools can read the partitions.
//!
//! Key (TransactionLogKey v0): `[0 i16][transactional id str]`. Value (TransactionLogValue
//! v0): `[0 i16][producer id i64][producer epoch i16][timeout ms i32][state i8]
//! [partitions: i32 count (-1: null), each [topic str][ids: i32 count, each i32]]
//! [last update ms i64][start ms i64]`, big-endian. A null value removes the transactional id.
//!
//! The state byte is Kafka's `TransactionState` id: Empty 0, Ongoing 1, PrepareCommit 2,
//! PrepareAbort 3, CompleteCommit 4, CompleteAbort 5 (Dead 6 and PrepareEpochFence 7 are
//! never written here; a record holding them is read as unreadable and skipped).

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use odradek_storage::wire::Reader;

use super::state::{TxnMeta, TxnState};
use crate::group::records::{RecordError, check_str};

/// The internal topic.
pub const TXN_TOPIC: &str = "__transaction_state";
/// Its segment size (Kafka's `transaction.state.log.segment.bytes`).
pub const TXN_SEGMENT_BYTES: &str = "104857600";

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// The `__transaction_state` partition of a transactional id: Kafka's rule, the same as a
/// group's (`Utils.abs(id.hashCode) % partitions`).
pub fn partition_for(txn_id: &str, partitions: i32) -> i32 {
    crate::group::records::partition_for(txn_id, partitions)
}

fn put_str(out: &mut BytesMut, field: &'static str, s: &str) -> Result<(), RecordError> {
    check_str(field, s)?;
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
    Ok(())
}

/// The record key of a transactional id.
pub fn txn_key(txn_id: &str) -> Result<Bytes, RecordError> {
    let mut out = BytesMut::with_capacity(4 + txn_id.len());
    out.put_i16(KEY_VERSION);
    put_str(&mut out, "transactional id", txn_id)?;
    Ok(out.freeze())
}

/// The transactional id a key names; `None` for damaged keys or other versions.
pub fn parse_key(key: &[u8]) -> Option<String> {
    let mut r = Reader::new(key);
    (r.i16()? == KEY_VERSION).then_some(())?;
    let id = r.str()?;
    r.is_empty().then_some(id)
}

/// The record value of a transaction's metadata.
pub fn txn_value(m: &TxnMeta) -> Result<Bytes, RecordError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &m.partitions {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut out = BytesMut::with_capacity(40 + m.partitions.len() * 8);
    out.put_i16(VALUE_VERSION);
    out.put_i64(m.producer_id);
    out.put_i16(m.epoch);
    out.put_i32(m.timeout_ms);
    out.put_i8(m.state.id());
    if by_topic.is_empty() {
        out.put_i32(-1);
    } else {
        out.put_i32(by_topic.len() as i32);
        for (topic, ids) in by_topic {
            put_str(&mut out, "topic", topic)?;
            out.put_i32(ids.len() as i32);
            for id in ids {
                out.put_i32(id);
            }
        }
    }
    out.put_i64(m.update_ms);
    out.put_i64(m.start_ms);
    Ok(out.freeze())
}

/// Reads a value written by [`txn_value`] (or Kafka's v0); `None` if damaged.
pub fn parse_value(value: &[u8]) -> Option<TxnMeta> {
    let mut r = Reader::new(value);
    (r.i16()? == VALUE_VERSION).then_some(())?;
    let producer_id = r.i64()?;
    let epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state = TxnState::from_id(r.u8()? as i8)?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let topic = r.str()?;
        let n = r.i32()?;
        if n < 0 {
            return None;
        }
        for _ in 0..n {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    let update_ms = r.i64()?;
    let start_ms = r.i64()?;
    r.is_empty().then_some(TxnMeta {
        producer_id,
        epoch,
        timeout_ms,
        state,
        partitions,
        update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_damage_is_refused() {
        let m = TxnMeta {
            producer_id: 42,
            epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [("a".to_owned(), 1), ("a".to_owned(), 0), ("b".to_owned(), 7)]
                .into_iter()
                .collect(),
            update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        };
        let v = txn_value(&m).expect("fits");
        assert_eq!(parse_value(&v), Some(m.clone()));
        for cut in 0..v.len() {
            assert_eq!(parse_value(&v[..cut]), None, "cut at {cut}");
        }
        let empty = TxnMeta { partitions: BTreeSet::new(), state: TxnState::Empty, ..m };
        let v = txn_value(&empty).expect("fits");
        assert_eq!(&v[17..21], &(-1i32).to_be_bytes(), "no partitions: a null array");
        assert_eq!(parse_value(&v), Some(empty));
        let mut bad_state = v.to_vec();
        bad_state[16] = 6;
        assert_eq!(parse_value(&bad_state), None, "Dead is never written here");
    }

    #[test]
    fn keys_round_trip() {
        let k = txn_key("my-txn").expect("fits");
        assert_eq!(&k[..4], &[0, 0, 0, 6]);
        assert_eq!(parse_key(&k).as_deref(), Some("my-txn"));
        assert_eq!(parse_key(&k[..5]), None);
        assert!(txn_key(&"x".repeat(40_000)).is_err());
        // Kafka's partition rule (the same Java hash as groups').
        assert_eq!(partition_for("my-group", 50), 36);
    }
}
