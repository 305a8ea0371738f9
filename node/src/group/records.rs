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
//!
//! Group metadata (the generation, protocol, leader and each member with its subscription and
//! assignment) is kept there too, as Kafka keeps it: key `[2 i16][group str]`, value v3
//! `[3 i16][protocol type str][generation i32][protocol nullable str][leader nullable str]
//! [state timestamp i64][members: i32 count, each [member id str][instance id nullable str]
//! [client id str][client host str][rebalance timeout i32][session timeout i32][subscription
//! bytes][assignment bytes]]`. Values v0–v2 (older Kafka) are read too.

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
const GROUP_KEY_VERSION: i16 = 2;
const GROUP_VALUE_VERSION: i16 = 3;

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

/// Longest string a record can hold: Kafka's `STRING` has an `i16` length.
pub const STR_MAX_BYTES: usize = i16::MAX as usize;
/// Longest byte field a record can hold: Kafka's `BYTES` has an `i32` length.
pub const BYTES_MAX: usize = i32::MAX as usize;

/// Why a record of `__consumer_offsets` cannot be written: a field too long for its length
/// prefix. Nothing is written then; the request that brought the field is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{field} is {len} bytes, longer than the {max} a stored string may have")]
    StringTooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} is {len} bytes, longer than the {max} stored bytes may have")]
    BytesTooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} has {count} entries, more than the {max} a stored array may have")]
    TooMany { field: &'static str, count: usize, max: usize },
}

impl RecordError {
    /// The Kafka error for the request that brought the field (Kafka refuses such requests as
    /// malformed).
    pub fn error_code(&self) -> odradek_net::ErrorCode {
        odradek_net::error_code::INVALID_REQUEST
    }
}

/// Whether `s` fits a stored string (`field` names it in the error).
pub fn check_str(field: &'static str, s: &str) -> Result<(), RecordError> {
    if s.len() > STR_MAX_BYTES {
        return Err(RecordError::StringTooLong { field, len: s.len(), max: STR_MAX_BYTES });
    }
    Ok(())
}

fn put_str(out: &mut BytesMut, field: &'static str, s: &str) -> Result<(), RecordError> {
    check_str(field, s)?;
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_nullable_str(
    out: &mut BytesMut,
    field: &'static str,
    s: Option<&str>,
) -> Result<(), RecordError> {
    match s {
        Some(s) => put_str(out, field, s),
        None => {
            out.put_i16(-1);
            Ok(())
        }
    }
}

fn put_bytes(out: &mut BytesMut, field: &'static str, b: &[u8]) -> Result<(), RecordError> {
    if b.len() > BYTES_MAX {
        return Err(RecordError::BytesTooLong { field, len: b.len(), max: BYTES_MAX });
    }
    out.put_i32(b.len() as i32);
    out.put_slice(b);
    Ok(())
}

/// The record key of a commit.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Result<Bytes, RecordError> {
    let mut out = BytesMut::with_capacity(12 + group.len() + topic.len());
    out.put_i16(KEY_VERSION);
    put_str(&mut out, "group id", group)?;
    put_str(&mut out, "topic", topic)?;
    out.put_i32(partition);
    Ok(out.freeze())
}

/// The record value of a commit.
pub fn offset_value(c: &Committed) -> Result<Bytes, RecordError> {
    let mut out = BytesMut::with_capacity(26 + c.metadata.len());
    out.put_i16(VALUE_VERSION);
    out.put_i64(c.offset);
    out.put_i32(c.leader_epoch);
    put_str(&mut out, "commit metadata", &c.metadata)?;
    out.put_i64(c.commit_timestamp);
    Ok(out.freeze())
}

/// What a record key of `__consumer_offsets` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A committed offset: group, topic, partition.
    Offset(String, String, i32),
    /// A group's metadata.
    Group(String),
}

/// The key of a record; `None` for damaged keys or kinds this node does not keep.
pub fn parse_key(key: &[u8]) -> Option<Key> {
    let mut r = Reader::new(key);
    match r.i16()? {
        0 | 1 => Some(Key::Offset(r.str()?, r.str()?, r.i32()?)),
        GROUP_KEY_VERSION => Some(Key::Group(r.str()?)),
        _ => None,
    }
}

/// One member as stored with its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata as stored: what a restart needs to let members go on without rejoining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<StoredMember>,
}

/// The record key of a group's metadata.
pub fn group_key(group: &str) -> Result<Bytes, RecordError> {
    let mut out = BytesMut::with_capacity(4 + group.len());
    out.put_i16(GROUP_KEY_VERSION);
    put_str(&mut out, "group id", group)?;
    Ok(out.freeze())
}

/// The record value of a group's metadata (version 3).
pub fn group_value(g: &StoredGroup) -> Result<Bytes, RecordError> {
    let members: usize = g
        .members
        .iter()
        .map(|m| 32 + m.id.len() + m.client_id.len() + m.subscription.len() + m.assignment.len())
        .sum();
    let mut out = BytesMut::with_capacity(64 + g.protocol_type.len() + members);
    out.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut out, "protocol type", &g.protocol_type)?;
    out.put_i32(g.generation);
    put_nullable_str(&mut out, "protocol", g.protocol.as_deref())?;
    put_nullable_str(&mut out, "leader", g.leader.as_deref())?;
    out.put_i64(g.state_timestamp);
    let count = i32::try_from(g.members.len()).map_err(|_| RecordError::TooMany {
        field: "members",
        count: g.members.len(),
        max: i32::MAX as usize,
    })?;
    out.put_i32(count);
    for m in &g.members {
        put_str(&mut out, "member id", &m.id)?;
        put_nullable_str(&mut out, "group instance id", m.instance_id.as_deref())?;
        put_str(&mut out, "client id", &m.client_id)?;
        put_str(&mut out, "client host", &m.client_host)?;
        out.put_i32(m.rebalance_timeout_ms);
        out.put_i32(m.session_timeout_ms);
        put_bytes(&mut out, "subscription", &m.subscription)?;
        put_bytes(&mut out, "assignment", &m.assignment)?;
    }
    Ok(out.freeze())
}

/// A group metadata value, versions 0 to 3; `None` for damaged values or later versions.
pub fn parse_group_value(value: &[u8]) -> Option<StoredGroup> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    if !(0..=GROUP_VALUE_VERSION).contains(&version) {
        return None;
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = usize::try_from(r.i32()?).ok()?;
    // Each member takes at least 22 bytes: a damaged count cannot make a huge allocation.
    let mut members = Vec::with_capacity(count.min(value.len() / 22));
    for _ in 0..count {
        let id = r.str()?;
        let instance_id = if version >= 3 { r.nullable_str()? } else { None };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        members.push(StoredMember {
            id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription: Bytes::copy_from_slice(r.bytes()?),
            assignment: Bytes::copy_from_slice(r.bytes()?),
        });
    }
    Some(StoredGroup { protocol_type, generation, protocol, leader, state_timestamp, members })
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
    /// Applies one offset record of `__consumer_offsets` (a commit, or a deletion when
    /// `value` is `None`).
    pub fn apply_record(
        &mut self,
        group: String,
        topic: String,
        partition: i32,
        value: Option<&[u8]>,
    ) {
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

/// A record's key and value (`None`: a tombstone).
pub type KeyValue = (Bytes, Option<Bytes>);

/// What one shard holds of the groups it coordinates: their offsets, and which of its
/// `__consumer_offsets` partitions have been read into them.
#[derive(Debug, Default)]
pub struct Coordinated {
    pub offsets: GroupOffsets,
    pub loaded: std::collections::HashSet<i32>,
    /// Groups with members, or with stored metadata (then possibly `Empty`).
    pub membership: HashMap<String, crate::group::state::Group>,
    /// Transactional offset commits not yet decided, per `__consumer_offsets` partition and
    /// producer id: the records as written, applied when the transaction's COMMIT marker is
    /// written to the partition, dropped at its ABORT (Kafka's pending transactional offsets).
    pub pending_txn: HashMap<(i32, i64), Vec<KeyValue>>,
}

impl Coordinated {
    /// Forgets membership entries that hold nothing: never a generation, no member, no pending
    /// member id (a JoinGroup answered MEMBER_ID_REQUIRED, then never completed, or refused).
    /// Without this, random group ids would grow the map, and the ticker's walk of it, forever.
    pub fn forget_unformed(&mut self) {
        self.membership
            .retain(|_, g| !(g.generation == 0 && g.members.is_empty() && g.pending.is_empty()));
    }

    /// Forgets every group of `__consumer_offsets` partition `partition` (of `partitions`):
    /// this broker no longer leads it, so another coordinates them; it reads them again if
    /// leadership comes back.
    pub fn unload(&mut self, partition: i32, partitions: i32) -> usize {
        if !self.loaded.remove(&partition) {
            return 0;
        }
        let mine = |g: &str| partition_for(g, partitions) == partition;
        self.offsets.groups.retain(|g, _| !mine(g));
        self.pending_txn.retain(|(p, _), _| *p != partition);
        let before = self.membership.len();
        self.membership.retain(|g, _| !mine(g));
        before - self.membership.len()
    }

    /// Ends producer `producer_id`'s transaction on `__consumer_offsets` partition
    /// `partition`: its offset commits become the groups' (`commit`) or are dropped. Returns
    /// how many records it applied.
    pub fn complete_txn(&mut self, partition: i32, producer_id: i64, commit: bool) -> usize {
        let Some(records) = self.pending_txn.remove(&(partition, producer_id)) else { return 0 };
        if !commit {
            return 0;
        }
        let n = records.len();
        for (key, value) in records {
            if let Some(Key::Offset(group, topic, p)) = parse_key(&key) {
                self.offsets.apply_record(group, topic, p, value.as_deref());
            }
        }
        n
    }

    /// Whether an undecided transaction holds a commit of `group` for `topic`-`partition`
    /// (OffsetFetch's `require_stable` answers UNSTABLE_OFFSET_COMMIT then, KIP-447).
    pub fn unstable(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn.values().flatten().any(|(key, _)| {
            matches!(parse_key(key), Some(Key::Offset(g, t, p)) if g == group && t == topic && p == partition)
        })
    }

    /// Applies the records of one `__consumer_offsets` partition, in log order: the newest
    /// value of each key wins and a null value deletes it. Groups whose metadata is stored come
    /// back with their members, generation and assignments (members then have one session
    /// timeout to heartbeat). Returns how many groups came back.
    pub fn load(&mut self, records: Vec<(Bytes, Option<Bytes>)>, now: std::time::Instant) -> usize {
        let mut stored: HashMap<String, Option<StoredGroup>> = HashMap::new();
        for (key, value) in records {
            match parse_key(&key) {
                Some(Key::Offset(group, topic, partition)) => {
                    self.offsets.apply_record(group, topic, partition, value.as_deref());
                }
                Some(Key::Group(group)) => {
                    let parsed = value.as_deref().and_then(parse_group_value);
                    if value.is_some() && parsed.is_none() {
                        tracing::warn!(group, "unreadable group metadata record skipped");
                        continue;
                    }
                    stored.insert(group, parsed);
                }
                None => {}
            }
        }
        let mut restored = 0;
        for (group, g) in stored {
            if let Some(g) = g
                && !self.membership.contains_key(&group)
            {
                self.membership.insert(group, crate::group::state::Group::restore(g, now));
                restored += 1;
            }
        }
        restored
    }
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
        let key = offset_key("g", "t", 7).expect("fits");
        assert_eq!(parse_key(&key), Some(Key::Offset("g".into(), "t".into(), 7)));
        assert_eq!(parse_value(&offset_value(&c).expect("fits")), Some(c.clone()));
        let mut coordinated = Coordinated::default();
        let now = std::time::Instant::now();
        coordinated.load(vec![(key.clone(), Some(offset_value(&c).expect("fits")))], now);
        assert_eq!(coordinated.offsets.get("g", "t", 7), Some(&c));
        assert_eq!(coordinated.offsets.all("g").len(), 1);
        coordinated.load(vec![(key, None)], now);
        assert_eq!(coordinated.offsets.get("g", "t", 7), None);
        assert_eq!(parse_key(&[0, 2, 0, 1, b'g']), Some(Key::Group("g".into())));
        assert!(parse_key(&[0, 9, 0, 1, b'g']).is_none(), "unknown key versions are skipped");
        assert!(parse_value(&[0, 3, 1]).is_none(), "damaged values are skipped");
    }

    fn stored_group() -> StoredGroup {
        StoredGroup {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("a-1".into()),
            state_timestamp: 1_700_000_000_000,
            members: vec![
                StoredMember {
                    id: "a-1".into(),
                    instance_id: None,
                    client_id: "a".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub-a"),
                    assignment: Bytes::from_static(b"asg-a"),
                },
                StoredMember {
                    id: "b-2".into(),
                    instance_id: Some("inst-b".into()),
                    client_id: "b".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 60_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::from_static(b"sub-b"),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    #[test]
    fn group_metadata_uses_kafkas_v3_layout_and_round_trips() {
        let g = stored_group();
        let key = group_key("grp").expect("fits");
        assert_eq!(&key[..], &[0, 2, 0, 3, b'g', b'r', b'p']);
        let value = group_value(&g).expect("fits");
        // Version, "consumer", generation 7, then "range".
        assert_eq!(&value[..2], &[0, 3]);
        assert_eq!(&value[2..12], b"\0\x08consumer");
        assert_eq!(&value[12..16], &7i32.to_be_bytes());
        assert_eq!(&value[16..23], b"\0\x05range");
        assert_eq!(parse_group_value(&value), Some(g.clone()));
        // Every cut is refused, never misread.
        for cut in 0..value.len() {
            assert_eq!(parse_group_value(&value[..cut]), None, "cut at {cut}");
        }
        let empty = StoredGroup { members: Vec::new(), protocol: None, leader: None, ..g };
        assert_eq!(parse_group_value(&group_value(&empty).expect("fits")), Some(empty));
    }

    #[test]
    fn strings_and_bytes_too_long_for_their_length_prefix_are_refused_not_wrapped() {
        let max = "x".repeat(STR_MAX_BYTES);
        let over = "x".repeat(STR_MAX_BYTES + 1);
        let too_long = |field| RecordError::StringTooLong {
            field,
            len: STR_MAX_BYTES + 1,
            max: STR_MAX_BYTES,
        };
        // The longest string fits and reads back whole.
        let key = offset_key(&max, "t", 0).expect("32767 bytes fit");
        assert_eq!(parse_key(&key), Some(Key::Offset(max.clone(), "t".into(), 0)));
        assert_eq!(parse_key(&group_key(&max).expect("fits")), Some(Key::Group(max.clone())));
        // One byte more is refused (before, its i16 length wrapped to -32768).
        assert_eq!(offset_key(&over, "t", 0), Err(too_long("group id")));
        assert_eq!(offset_key("g", &over, 0), Err(too_long("topic")));
        assert_eq!(group_key(&over), Err(too_long("group id")));
        let c =
            Committed { offset: 1, leader_epoch: -1, metadata: over.clone(), commit_timestamp: 0 };
        assert_eq!(offset_value(&c), Err(too_long("commit metadata")));
        // Every string of a group's metadata, whichever member carries it.
        let g = stored_group();
        let cases: Vec<(&str, StoredGroup)> = vec![
            ("protocol type", StoredGroup { protocol_type: over.clone(), ..g.clone() }),
            ("protocol", StoredGroup { protocol: Some(over.clone()), ..g.clone() }),
            ("leader", StoredGroup { leader: Some(over.clone()), ..g.clone() }),
        ];
        for (field, bad) in cases {
            assert_eq!(group_value(&bad), Err(too_long(field)));
        }
        type Set = fn(&mut StoredMember, String);
        let members: Vec<(&str, Set)> = vec![
            ("member id", |m, s| m.id = s),
            ("group instance id", |m, s| m.instance_id = Some(s)),
            ("client id", |m, s| m.client_id = s),
            ("client host", |m, s| m.client_host = s),
        ];
        for (field, set) in members {
            let mut bad = g.clone();
            set(&mut bad.members[1], over.clone());
            assert_eq!(group_value(&bad), Err(too_long(field)), "{field}");
            assert_eq!(too_long(field).error_code(), odradek_net::error_code::INVALID_REQUEST);
        }
    }

    #[test]
    fn older_group_metadata_versions_are_read() {
        // Version 0: no state timestamp, no rebalance timeout, no instance id.
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        put_str(&mut v0, "s", "consumer").expect("fits");
        v0.put_i32(3);
        put_nullable_str(&mut v0, "s", Some("range")).expect("fits");
        put_nullable_str(&mut v0, "s", Some("m")).expect("fits");
        v0.put_i32(1);
        put_str(&mut v0, "s", "m").expect("fits");
        put_str(&mut v0, "s", "c").expect("fits");
        put_str(&mut v0, "s", "/h").expect("fits");
        v0.put_i32(10_000);
        put_bytes(&mut v0, "b", b"s").expect("fits");
        put_bytes(&mut v0, "b", b"a").expect("fits");
        let g = parse_group_value(&v0).expect("v0");
        assert_eq!((g.generation, g.state_timestamp, g.members.len()), (3, -1, 1));
        assert_eq!(g.members[0].rebalance_timeout_ms, 10_000, "defaults to the session timeout");
        assert_eq!(parse_group_value(&[0, 4]), None, "later versions are not guessed at");
    }

    #[test]
    fn loading_restores_the_newest_group_metadata_and_honours_tombstones() {
        let now = std::time::Instant::now();
        let g = stored_group();
        let newer = StoredGroup { generation: 8, ..g.clone() };
        let mut c = Coordinated::default();
        let restored = c.load(
            vec![
                (group_key("grp").expect("fits"), Some(group_value(&g).expect("fits"))),
                (group_key("grp").expect("fits"), Some(group_value(&newer).expect("fits"))),
                (group_key("gone").expect("fits"), Some(group_value(&g).expect("fits"))),
                (group_key("gone").expect("fits"), None),
                (group_key("bad").expect("fits"), Some(Bytes::from_static(&[0, 3, 0]))),
            ],
            now,
        );
        assert_eq!(restored, 1);
        let grp = c.membership.get("grp").expect("restored");
        assert_eq!(grp.generation, 8);
        assert_eq!(grp.members.len(), 2);
        assert!(!c.membership.contains_key("gone"), "deleted");
        assert!(!c.membership.contains_key("bad"), "unreadable");
    }
}
