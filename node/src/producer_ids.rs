//! Producer ids for InitProducerId: unique for the life of the data directory, across
//! restarts and crashes.
//!
//! Ids are handed out from blocks of [`BLOCK`]: before the first id of a block is given out,
//! the block's end is made durable in `producer-ids` (write, fsync, rename, fsync the
//! directory). After a restart, allocation resumes at the persisted end, so an id is never
//! given twice; at most one block's worth of ids goes unused per restart. Shared by all shards
//! behind a mutex: InitProducerId is rare (once per producer), never on the produce path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// The node's producer-id allocator.
#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    next: Mutex<Next>,
}

impl ProducerIds {
    /// Resumes after the last reserved block of `data_dir` (from 0 on a new node).
    pub fn open(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join(PRODUCER_IDS_FILE);
        let start = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|_| {
                format!("{} does not hold a producer id: `{}`", path.display(), text.trim())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        Ok(Self { path, next: Mutex::new(Next { next: start, reserved_end: start }) })
    }

    /// A producer id never handed out before.
    pub fn allocate(&self) -> Result<i64, String> {
        let mut n = self.next.lock().map_err(|_| "producer id allocator poisoned".to_owned())?;
        if n.next >= n.reserved_end {
            let end = n.next.checked_add(BLOCK).ok_or("producer ids exhausted")?;
            self.persist(end)?;
            n.reserved_end = end;
        }
        let id = n.next;
        n.next += 1;
        Ok(id)
    }

    fn persist(&self, end: i64) -> Result<(), String> {
        let tmp = self.path.with_extension("tmp");
        let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", tmp.display());
        let mut f = std::fs::File::create(&tmp).map_err(|e| fail("create", e))?;
        f.write_all(end.to_string().as_bytes()).map_err(|e| fail("write", e))?;
        f.sync_all().map_err(|e| fail("fsync", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail("rename", e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail("fsync dir of", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::open(dir.path()).expect("open");
        let first: Vec<i64> = (0..3).map(|_| ids.allocate().expect("id")).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(ids);
        let again = ProducerIds::open(dir.path()).expect("reopen");
        assert_eq!(again.allocate().expect("id"), BLOCK, "resumes after the reserved block");
        for _ in 0..BLOCK {
            again.allocate().expect("id");
        }
        drop(again);
        let third = ProducerIds::open(dir.path()).expect("reopen");
        assert_eq!(third.allocate().expect("id"), 3 * BLOCK);
        std::fs::write(dir.path().join(PRODUCER_IDS_FILE), "junk").expect("write");
        assert!(ProducerIds::open(dir.path()).is_err());
    }
}
