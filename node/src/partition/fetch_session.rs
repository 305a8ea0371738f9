//! Incremental fetch sessions (KIP-227), one cache per shard.
//!
//! A session remembers, per partition, the fetch position the client last gave and the high
//! watermark and log start offset last sent. A continuing request then names only the
//! partitions whose position changed (and the ones to forget), and the response names only
//! the partitions with records, an error, or a changed watermark. That turns a consumer of
//! many idle partitions from O(partitions) bytes per poll into O(changes).
//!
//! Bounds: at most [`SESSIONS_PER_SHARD_MAX`] sessions per shard; when full, the least
//! recently used session idle for [`SESSION_EVICTABLE_AFTER`] makes room, and otherwise no
//! session is created (the client is told `session_id` 0 and keeps sending full requests,
//! which the protocol allows). Partitions per session are bounded by the request size.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::indexmap::IndexMap;
use uuid::Uuid;

/// The epoch that closes a session (or asks for none).
pub const FINAL_EPOCH: i32 = -1;
/// Sessions one shard keeps (Kafka's `max.incremental.fetch.session.cache.slots` is 1000 per
/// broker).
pub const SESSIONS_PER_SHARD_MAX: usize = 1000;
/// A session unused this long may be evicted for a new one (Kafka's
/// `min.incremental.fetch.session.eviction.ms`).
pub const SESSION_EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// A partition as a fetch names it: by topic name (Fetch ≤ v12) or topic id (v13+).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartKey {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// What a session remembers of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    pub offset: i64,
    pub max_bytes: i32,
    /// The fetcher's `current_leader_epoch` and `last_fetched_epoch` as last named (KIP-320:
    /// a follower's session keeps them, so an unnamed partition is still checked).
    pub epochs: (i32, i32),
    /// High watermark and log start offset last sent; `None` before the first response.
    sent: Option<(i64, i64)>,
}

/// One session.
#[derive(Debug)]
pub struct Session {
    /// The epoch the next request must carry.
    pub next_epoch: i32,
    pub parts: IndexMap<PartKey, Cached>,
    last_used: Instant,
}

impl Session {
    /// Applies a continuing request: new positions for the partitions it names (added if
    /// new), and removal of the forgotten ones.
    pub fn update(
        &mut self,
        named: impl IntoIterator<Item = (PartKey, i64, i32, (i32, i32))>,
        forgotten: &[PartKey],
    ) {
        for (key, offset, max_bytes, epochs) in named {
            let entry =
                self.parts.entry(key).or_insert(Cached { offset, max_bytes, epochs, sent: None });
            entry.offset = offset;
            entry.max_bytes = max_bytes;
            entry.epochs = epochs;
        }
        for key in forgotten {
            self.parts.shift_remove(key);
        }
    }

    /// Whether a partition's watermarks differ from what was last sent (or nothing was sent
    /// yet); records them as sent.
    pub fn changed(&mut self, key: &PartKey, high_watermark: i64, log_start: i64) -> bool {
        match self.parts.get_mut(key) {
            Some(c) => {
                let now = Some((high_watermark, log_start));
                let changed = c.sent != now;
                c.sent = now;
                changed
            }
            None => true,
        }
    }
}

/// The epoch after `epoch` (wrapping past `i32::MAX` to 1, as Kafka does).
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

/// One shard's sessions.
#[derive(Debug)]
pub struct Sessions {
    shard: usize,
    shards: usize,
    counter: u32,
    map: HashMap<i32, Session>,
}

impl Sessions {
    /// The cache of shard `shard` of `shards`. Ids are `counter * shards + shard + 1`, so no
    /// two shards hand out the same id and none is 0.
    pub fn new(shard: usize, shards: usize) -> Self {
        Self { shard, shards: shards.max(1), counter: 0, map: HashMap::new() }
    }

    fn next_id(&mut self) -> i32 {
        loop {
            self.counter = self.counter.wrapping_add(1);
            let id = (u64::from(self.counter) * self.shards as u64 + self.shard as u64 + 1)
                % (i32::MAX as u64);
            let id = id as i32;
            if id != 0 && !self.map.contains_key(&id) {
                return id;
            }
        }
    }

    /// Starts a session over `parts` (key, offset, max bytes, the fetcher's epochs, and the
    /// watermarks the response carries). Returns its id, or 0 when the cache is full and
    /// nothing can be evicted.
    pub fn create(
        &mut self,
        parts: impl IntoIterator<Item = (PartKey, i64, i32, (i32, i32), i64, i64)>,
        now: Instant,
    ) -> i32 {
        if self.map.len() >= SESSIONS_PER_SHARD_MAX {
            let oldest =
                self.map.iter().min_by_key(|(_, s)| s.last_used).map(|(id, s)| (*id, s.last_used));
            match oldest {
                Some((id, used)) if now.duration_since(used) >= SESSION_EVICTABLE_AFTER => {
                    self.map.remove(&id);
                }
                _ => return 0,
            }
        }
        let parts = parts
            .into_iter()
            .map(|(key, offset, max_bytes, epochs, hw, start)| {
                (key, Cached { offset, max_bytes, epochs, sent: Some((hw, start)) })
            })
            .collect();
        let id = self.next_id();
        self.map.insert(id, Session { next_epoch: 1, parts, last_used: now });
        id
    }

    pub fn get_mut(&mut self, id: i32, now: Instant) -> Option<&mut Session> {
        let s = self.map.get_mut(&id)?;
        s.last_used = now;
        Some(s)
    }

    pub fn remove(&mut self, id: i32) {
        self.map.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartKey {
        PartKey { topic: "t".into(), topic_id: Uuid::nil(), partition: p }
    }

    #[test]
    fn a_session_reports_only_what_changed() {
        let now = Instant::now();
        let mut cache = Sessions::new(1, 2);
        let id =
            cache.create([(key(0), 0, 100, (-1, -1), 5, 0), (key(1), 0, 100, (-1, -1), 0, 0)], now);
        assert_ne!(id, 0);
        let s = cache.get_mut(id, now).expect("session");
        assert_eq!(s.next_epoch, 1);
        assert!(!s.changed(&key(0), 5, 0), "same watermarks as the first response");
        assert!(s.changed(&key(1), 3, 0), "new data");
        assert!(!s.changed(&key(1), 3, 0));
        s.update([(key(0), 5, 100, (3, 2)), (key(2), 0, 50, (-1, -1))], &[key(1)]);
        let keys: Vec<i32> = s.parts.keys().map(|k| k.partition).collect();
        assert_eq!(keys, vec![0, 2]);
        assert_eq!(s.parts.get(&key(0)).map(|c| (c.offset, c.epochs)), Some((5, (3, 2))));
        assert!(
            s.changed(&key(2), 0, 0),
            "a partition added by an incremental request is sent once"
        );
        cache.remove(id);
        assert!(cache.get_mut(id, now).is_none());
        assert_eq!(next_epoch(i32::MAX), 1);
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_only_idle_sessions() {
        let t0 = Instant::now();
        let mut cache = Sessions::new(0, 1);
        for _ in 0..SESSIONS_PER_SHARD_MAX {
            assert_ne!(cache.create([(key(0), 0, 1, (-1, -1), 0, 0)], t0), 0);
        }
        assert_eq!(
            cache.create([(key(0), 0, 1, (-1, -1), 0, 0)], t0),
            0,
            "full, nothing idle: no session"
        );
        let later = t0 + SESSION_EVICTABLE_AFTER;
        assert_ne!(
            cache.create([(key(0), 0, 1, (-1, -1), 0, 0)], later),
            0,
            "an idle session makes room"
        );
        assert_eq!(cache.map.len(), SESSIONS_PER_SHARD_MAX);
    }
}
