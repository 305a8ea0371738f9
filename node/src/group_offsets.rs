//! Committed offsets of consumer groups, kept in the internal topic `__consumer_offsets`.
//!
//! Each group belongs to one partition of the topic (Kafka's rule: the group id's Java string
//! hash, made non-negative, modulo the partition count), so to the shard that owns that
//! partition: that shard appends the group's commits to the partition (fsynced before the
//! reply) and keeps their latest values in memory, rebuilt by reading its partitions at
//! start-up. The topic is compacted, so only the newest value per key stays on disk.
//!
//! Records use Kafka's own layouts (offset commit key v1, value v3), so Kafka's tools can read
//! the partitions: key `[1 i16][group str][topic str][partition i32]`, value `[3 i16][offset
//! i64][leader epoch i32][metadata str][commit timestamp i64]`; a null value deletes the key.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use odradek_storage::wire::Reader;

/// The internal topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Its partitions (Kafka's `offsets.topic.num.partitions`).
pub const OFFSETS_PARTITIONS: i32 = 50;
/// Its segment size (Kafka's `offsets.topic.segment.bytes`).
pub const OFFSETS_SEGMENT_BYTES: &str = "104857600";
/// Longest commit metadata accepted (Kafka's `offset.metadata.max.bytes`).
pub const METADATA_MAX_BYTES: usize = 4096;

const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;

/// Java's `String.hashCode` over UTF-16 code units.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of `group` (Kafka's `Utils.abs(hash) % partitions`).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    (java_hash(group) & 0x7fff_ffff) % partitions.max(1)
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

/// The record key of a commit.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut out = BytesMut::with_capacity(12 + group.len() + topic.len());
    out.put_i16(KEY_VERSION);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out.freeze()
}

/// The record value of a commit.
pub fn offset_value(c: &Committed) -> Bytes {
    let mut out = BytesMut::with_capacity(26 + c.metadata.len());
    out.put_i16(VALUE_VERSION);
    out.put_i64(c.offset);
    out.put_i32(c.leader_epoch);
    put_str(&mut out, &c.metadata);
    out.put_i64(c.commit_timestamp);
    out.freeze()
}

/// `(group, topic, partition)` of an offset commit key; `None` for other keys (group metadata,
/// written by Kafka's coordinator as key version 2) or damaged ones.
pub fn parse_key(key: &[u8]) -> Option<(String, String, i32)> {
    let mut r = Reader::new(key);
    match r.i16()? {
        0 | 1 => Some((r.str()?, r.str()?, r.i32()?)),
        _ => None,
    }
}

/// A commit value, versions 1 and 3 (the ones with a commit timestamp).
pub fn parse_value(value: &[u8]) -> Option<Committed> {
    let mut r = Reader::new(value);
    match r.i16()? {
        1 => {
            let offset = r.i64()?;
            let metadata = r.str()?;
            let commit_timestamp = r.i64()?;
            Some(Committed { offset, leader_epoch: -1, metadata, commit_timestamp })
        }
        3 => {
            let offset = r.i64()?;
            let leader_epoch = r.i32()?;
            let metadata = r.str()?;
            let commit_timestamp = r.i64()?;
            Some(Committed { offset, leader_epoch, metadata, commit_timestamp })
        }
        _ => None,
    }
}

/// The latest committed offsets of the groups one shard coordinates.
#[derive(Debug, Default)]
pub struct GroupOffsets {
    groups: HashMap<String, HashMap<(String, i32), Committed>>,
}

impl GroupOffsets {
    /// Applies one record of `__consumer_offsets` (a commit, or a deletion when `value` is
    /// `None`). Records that are not offset commits are ignored.
    pub fn apply_record(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Some((group, topic, partition)) = parse_key(key) else { return };
        match value.and_then(parse_value) {
            Some(c) => {
                self.groups.entry(group).or_default().insert((topic, partition), c);
            }
            None => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.remove(&(topic, partition));
                    if g.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
        }
    }

    pub fn commit(&mut self, group: &str, topic: &str, partition: i32, c: Committed) {
        self.groups.entry(group.to_owned()).or_default().insert((topic.to_owned(), partition), c);
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&Committed> {
        self.groups.get(group)?.get(&(topic.to_owned(), partition))
    }

    /// Every group with a committed offset.
    pub fn groups(&self) -> Vec<String> {
        let mut g: Vec<String> = self.groups.keys().cloned().collect();
        g.sort();
        g
    }

    /// Forgets one committed offset; whether there was one.
    pub fn remove(&mut self, group: &str, topic: &str, partition: i32) -> bool {
        let Some(g) = self.groups.get_mut(group) else { return false };
        let removed = g.remove(&(topic.to_owned(), partition)).is_some();
        if g.is_empty() {
            self.groups.remove(group);
        }
        removed
    }

    /// Offsets committed before `cutoff` (ms since the epoch), by group.
    pub fn expired(&self, cutoff: i64) -> Vec<(String, Vec<(String, i32)>)> {
        let mut out: Vec<(String, Vec<(String, i32)>)> = self
            .groups
            .iter()
            .map(|(g, offsets)| {
                let old = offsets
                    .iter()
                    .filter(|(_, c)| c.commit_timestamp < cutoff)
                    .map(|((t, p), _)| (t.clone(), *p))
                    .collect::<Vec<_>>();
                (g.clone(), old)
            })
            .filter(|(_, old)| !old.is_empty())
            .collect();
        out.sort();
        out
    }

    /// Every committed offset of `group`, by topic then partition.
    pub fn all(&self, group: &str) -> Vec<(String, i32, Committed)> {
        let mut out: Vec<(String, i32, Committed)> = self
            .groups
            .get(group)
            .map(|g| g.iter().map(|((t, p), c)| (t.clone(), *p, c.clone())).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}

/// What one shard holds of the groups it coordinates: their offsets, and which of its
/// `__consumer_offsets` partitions have been read into them.
#[derive(Debug, Default)]
pub struct Coordinated {
    pub offsets: GroupOffsets,
    pub loaded: std::collections::HashSet<i32>,
    /// Groups with members (or that had some since the start).
    pub membership: HashMap<String, crate::membership::Group>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_land_on_kafkas_partitions() {
        // Java: "my-group".hashCode() = -1906497762; masked, % 50 = 36. "" → 0.
        assert_eq!(java_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 36);
        assert_eq!(partition_for("", 50), 0);
        // A negative hash is made non-negative by masking, as Kafka's Utils.abs does.
        let h = java_hash("polygenelubricants");
        assert_eq!(h, i32::MIN, "a known string hashing to Integer.MIN_VALUE");
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }

    #[test]
    fn commits_round_trip_and_tombstones_delete() {
        let c = Committed {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        let key = offset_key("g", "t", 7);
        assert_eq!(parse_key(&key), Some(("g".into(), "t".into(), 7)));
        assert_eq!(parse_value(&offset_value(&c)), Some(c.clone()));
        let mut offsets = GroupOffsets::default();
        offsets.apply_record(&key, Some(&offset_value(&c)));
        assert_eq!(offsets.get("g", "t", 7), Some(&c));
        assert_eq!(offsets.all("g").len(), 1);
        offsets.apply_record(&key, None);
        assert_eq!(offsets.get("g", "t", 7), None);
        assert!(parse_key(&[0, 2, 0, 1, b'g']).is_none(), "group metadata keys are skipped");
        assert!(parse_value(&[0, 3, 1]).is_none(), "damaged values are skipped");
    }
}
