//! The producers room: producer ids for InitProducerId, unique for the life of the data
//! directory, across restarts and crashes.
//!
//! Ids are handed out from blocks of [`BLOCK`]: before the first id of a block is given out,
//! the block's end is made durable in `producer-ids` (write, fsync, rename, fsync the
//! directory) on the blocking pool. After a restart, allocation resumes at the persisted end,
//! so an id is never given twice; at most one block's worth of ids goes unused per restart.
//!
//! **Invariants.** Every id handed out is below the durable `reserved_end`. No thread waits on
//! a lock held across a disk call: the counter's mutex is held for a few instructions, and the
//! reservation of a new block (one at a time, serialized by an async lock) writes on the
//! blocking pool while the shard goes on serving.
//!
//! **What it does not know.** Kafka requests (the `api` room answers InitProducerId), or
//! sequence checks (those are the partition log's).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::runtime::blocking::{Blocking, ReplaceError};

/// The file in the data directory.
pub const PRODUCER_IDS_FILE: &str = "producer-ids";
/// Ids reserved by one durable write.
pub const BLOCK: i64 = 1000;

#[derive(Debug)]
struct Next {
    next: i64,
    /// Ids below this are reserved durably.
    reserved_end: i64,
}

/// Why no producer id could be had.
#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("{path} does not hold a producer id: `{found}`")]
    Invalid { path: PathBuf, found: String },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("reserving producer ids: {0}")]
    Reserve(#[from] ReplaceError),
    #[error("producer ids exhausted")]
    Exhausted,
}

/// The node's producer-id allocator, shared by every shard.
#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    next: Mutex<Next>,
    /// One block reservation at a time, so reserved ends only grow on disk.
    reserving: async_lock::Mutex<()>,
    pool: Blocking,
}

impl ProducerIds {
    /// Resumes after the last reserved block of `data_dir` (from 0 on a new node). Called at
    /// start-up, before any shard runs.
    pub fn open(data_dir: &Path, pool: Blocking) -> Result<Self, ProducerIdError> {
        let path = data_dir.join(PRODUCER_IDS_FILE);
        let start = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|_| ProducerIdError::Invalid {
                path: path.clone(),
                found: text.trim().to_owned(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(ProducerIdError::Read { path, source }),
        };
        let next = Mutex::new(Next { next: start, reserved_end: start });
        Ok(Self { path, next, reserving: async_lock::Mutex::new(()), pool })
    }

    /// A producer id never handed out before.
    pub async fn allocate(&self) -> Result<i64, ProducerIdError> {
        loop {
            if let Some(id) = self.take() {
                return Ok(id);
            }
            let _one_at_a_time = self.reserving.lock().await;
            let end = {
                let n = self.lock();
                if n.next < n.reserved_end {
                    continue; // another caller reserved a block meanwhile
                }
                n.reserved_end.checked_add(BLOCK).ok_or(ProducerIdError::Exhausted)?
            };
            self.pool.replace_file(self.path.clone(), end.to_string().into_bytes()).await?;
            let mut n = self.lock();
            debug_assert!(end > n.reserved_end, "reserved ends only grow");
            n.reserved_end = end;
        }
    }

    /// The next id if it is already reserved durably.
    fn take(&self) -> Option<i64> {
        let mut n = self.lock();
        (n.next < n.reserved_end).then(|| {
            n.next += 1;
            n.next - 1
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Next> {
        // The guarded section cannot panic, so the lock is never poisoned; if it were, its
        // numbers are still consistent (each update is one store).
        self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Blocking::start().expect("pool");
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let ids = ProducerIds::open(dir.path(), pool.clone()).expect("open");
            let mut first = Vec::new();
            for _ in 0..3 {
                first.push(ids.allocate().await.expect("id"));
            }
            assert_eq!(first, vec![0, 1, 2]);
            drop(ids);
            let again = ProducerIds::open(dir.path(), pool.clone()).expect("reopen");
            assert_eq!(again.allocate().await.expect("id"), BLOCK, "resumes after the block");
            for _ in 0..BLOCK {
                again.allocate().await.expect("id");
            }
            drop(again);
            let third = ProducerIds::open(dir.path(), pool.clone()).expect("reopen");
            assert_eq!(third.allocate().await.expect("id"), 3 * BLOCK);
        });
        std::fs::write(dir.path().join(PRODUCER_IDS_FILE), "junk").expect("write");
        assert!(matches!(
            ProducerIds::open(dir.path(), pool),
            Err(ProducerIdError::Invalid { .. })
        ));
    }

    #[test]
    fn concurrent_callers_get_distinct_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Blocking::start().expect("pool");
        let ids = std::sync::Arc::new(ProducerIds::open(dir.path(), pool).expect("open"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || {
                    let runtime = compio::runtime::Runtime::new().expect("runtime");
                    runtime.block_on(async {
                        let mut got = Vec::new();
                        for _ in 0..600 {
                            got.push(ids.allocate().await.expect("id"));
                        }
                        got
                    })
                })
            })
            .collect();
        let mut all: Vec<i64> = threads.into_iter().flat_map(|t| t.join().expect("join")).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2400, "no id was handed out twice");
        let stored = std::fs::read_to_string(dir.path().join(PRODUCER_IDS_FILE)).expect("read");
        assert!(stored.trim().parse::<i64>().expect("number") > *all.last().expect("some"));
    }
}
