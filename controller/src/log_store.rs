//! The raft log on a Kafka-format partition, and the vote in a small durable file.
//!
//! Each raft entry is one record (key: the index as 8 big-endian bytes; value: the entry as
//! JSON) in its own RecordBatch v2, appended to `<data_dir>/__cluster_metadata-0` through
//! [`odradek_storage::Log`]. Kafka offset = raft index − `index_delta`; the delta only moves
//! while the log is empty (a follower that installed a snapshot past its log end continues at
//! the snapshot's index), and is persisted with the vote.
//!
//! # Guarantees
//! - `append` returns once the entries are readable; openraft's callback is completed only
//!   after [`odradek_storage::Log::sync`] made them durable.
//! - `save_vote` returns after the vote is on stable storage (tmp file, fdatasync, rename,
//!   directory fsync, all through io_uring: the thread never blocks on an fsync).
//! - `truncate_after` cuts the conflicting suffix with `Log::truncate_to` (synced before it
//!   returns); `purge` persists the purged log id first, then `Log::delete_records`.
//! - A full disk is waited out, not reported: an append or a quorum-state write refused for
//!   want of space (which leaves the log unchanged and unfenced) is retried with a back-off for
//!   up to [`DISK_FULL_WAIT_MAX`], logged once when it starts and once when it succeeds. Handing
//!   the error to openraft would stop raft for good, and every metadata write would answer
//!   NOT_CONTROLLER until a restart, even after space was freed.

use std::cell::RefCell;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use odradek_storage::batch::{BatchHeader, HEADER_BYTES};
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::records::{Record, decode_records};
use odradek_storage::segment::{read_whole, write_whole};
use odradek_storage::{Backend, CompioBackend, Log, LogConfig, StorageFile};
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::types::{Entry, LogId, TypeConfig, Vote};

/// The partition that holds the raft log, as Kafka names KRaft's.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";
/// The file that holds the vote, the purged log id and the index delta.
pub const QUORUM_STATE_FILE: &str = "quorum-state.json";
/// The file that holds the last committed log id (a hint, written without fsync).
pub const COMMITTED_FILE: &str = "committed.json";
/// Most bytes read from the log per read call when serving entries.
const READ_BYTES_MAX: u64 = 1 << 20;
/// How long a metadata write waits for space on a full disk before the error goes to raft.
pub const DISK_FULL_WAIT_MAX: Duration = Duration::from_secs(300);
/// The first and the longest pause between tries on a full disk.
const DISK_FULL_PAUSE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// What the log store persists besides entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuorumState {
    pub vote: Option<Vote>,
    pub last_purged: Option<LogId>,
    pub index_delta: u64,
}

/// Writes `bytes` to `dir/name` durably: a tmp file, fdatasync, rename, directory fsync.
pub async fn write_durably(dir: &Path, name: &str, bytes: Vec<u8>) -> io::Result<()> {
    let backend = CompioBackend;
    let tmp = dir.join(format!("{name}.tmp"));
    // The failure itself (not its text) is kept, so that a full disk can be told apart.
    write_whole(&backend, &tmp, bytes).await.map_err(io::Error::other)?;
    backend.rename(&tmp, &dir.join(name)).await?;
    backend.sync_dir(dir).await
}

/// Replaces `dir/name` without any fsync (a tmp file and a rename): for hints that may be lost
/// or come back torn after a crash, never for what raft's safety rests on.
async fn write_unsynced(dir: &Path, name: &str, bytes: Vec<u8>) -> io::Result<()> {
    let backend = CompioBackend;
    let tmp = dir.join(format!("{name}.tmp"));
    let file = backend.open(&tmp, true).await?;
    let len = bytes.len() as u64;
    file.write_at(0, vec![Bytes::from(bytes)]).await?;
    file.set_len(len).await?;
    backend.rename(&tmp, &dir.join(name)).await
}

/// Reads `dir/name` whole, `None` if it does not exist.
pub async fn read_file(dir: &Path, name: &str) -> io::Result<Option<Bytes>> {
    read_whole(&CompioBackend, &dir.join(name)).await.map_err(io::Error::other)
}

struct Inner {
    log: Log<CompioBackend>,
    dir: PathBuf,
    state: RefCell<QuorumState>,
}

/// The log store handed to openraft; its log readers are clones sharing it (one thread).
#[derive(Clone)]
pub struct LogStore {
    inner: Rc<Inner>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("log", &self.inner.log).finish()
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Whether `e` says the device is out of space: the OS error itself, or a storage failure
/// (an [`IoFailure`] or an append's) carried inside it.
fn is_disk_full(e: &io::Error) -> bool {
    use odradek_storage::AppendError;
    use odradek_storage::error::IoFailure;
    if matches!(e.raw_os_error(), Some(28) | Some(122)) {
        return true;
    }
    let Some(inner) = e.get_ref() else { return false };
    if let Some(f) = inner.downcast_ref::<IoFailure>() {
        return f.is_disk_full();
    }
    matches!(inner.downcast_ref::<AppendError>(), Some(AppendError::Io(f)) if f.is_disk_full())
}

/// Runs `op` until it succeeds, fails otherwise than for want of space, or the disk has been
/// full for [`DISK_FULL_WAIT_MAX`]; pauses between tries grow from 100 ms to 2 s. `what` names
/// the write in the two lines logged (when the disk is first found full, and when it succeeds).
async fn waiting_for_space<T>(
    what: &'static str,
    mut op: impl AsyncFnMut() -> io::Result<T>,
) -> io::Result<T> {
    let started = Instant::now();
    let mut pause = DISK_FULL_PAUSE.0;
    let mut full = false;
    loop {
        match op().await {
            Ok(v) => {
                if full {
                    let waited_ms = started.elapsed().as_millis() as u64;
                    info!(what, waited_ms, "metadata write succeeded again: the disk has room");
                }
                return Ok(v);
            }
            Err(e) if is_disk_full(&e) && started.elapsed() < DISK_FULL_WAIT_MAX => {
                if !full {
                    warn!(what, error = %e, wait_max_s = DISK_FULL_WAIT_MAX.as_secs(), "the disk is full: the controller's metadata writes wait for space (free some: delete records or topics, or grow the volume)");
                    full = true;
                }
                compio::time::sleep(pause).await;
                pause = (pause * 2).min(DISK_FULL_PAUSE.1);
            }
            Err(e) => return Err(e),
        }
    }
}

impl LogStore {
    /// Opens (recovering if needed) the log in `data_dir` and reads the quorum state.
    pub async fn open(data_dir: &Path, segment_bytes: u64) -> io::Result<Self> {
        // Entries are bounded by `COMMAND_BYTES_MAX` well below the default max.message.bytes.
        let config = LogConfig { segment_bytes, ..LogConfig::default() };
        const _: () = assert!(crate::image::COMMAND_BYTES_MAX * 2 < 1_048_588);
        let log = Log::open(CompioBackend, &data_dir.join(METADATA_LOG_DIR), config)
            .await
            .map_err(other)?;
        let state = match read_file(data_dir, QUORUM_STATE_FILE).await? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{QUORUM_STATE_FILE}: {e}"))
            })?,
            None => QuorumState::default(),
        };
        let store = LogStore {
            inner: Rc::new(Inner { log, dir: data_dir.to_owned(), state: RefCell::new(state) }),
        };
        store.finish_purge().await?;
        Ok(store)
    }

    /// Whether the store holds nothing: no entry, no vote, nothing purged.
    pub fn is_pristine(&self) -> bool {
        let st = self.inner.state.borrow();
        st.vote.is_none() && st.last_purged.is_none() && self.inner.log.log_end_offset() == 0
    }

    /// Closes the log cleanly (the next open skips the recovery scan).
    pub async fn close(&self) -> io::Result<()> {
        self.inner.log.close().await.map_err(other)
    }

    /// Raft index of Kafka offset 0.
    fn delta(&self) -> u64 {
        self.inner.state.borrow().index_delta
    }

    async fn persist(&self) -> io::Result<()> {
        let bytes = serde_json::to_vec(&*self.inner.state.borrow()).map_err(other)?;
        let dir = &self.inner.dir;
        waiting_for_space("quorum state", async || {
            write_durably(dir, QUORUM_STATE_FILE, bytes.clone()).await
        })
        .await
    }

    /// Completes a purge interrupted between persisting the purged id and deleting records.
    async fn finish_purge(&self) -> io::Result<()> {
        let upto = self.inner.state.borrow().last_purged.as_ref().map(|l| l.index + 1);
        if let Some(next) = upto {
            let log = &self.inner.log;
            let offset = next.saturating_sub(self.delta()).min(log.log_end_offset());
            if offset > log.log_start_offset() {
                log.delete_records(offset).await.map_err(other)?;
            }
        }
        Ok(())
    }

    /// The entries with raft index in `[from, to)` that the log holds.
    async fn read_entries(&self, from: u64, to: u64) -> io::Result<Vec<Entry>> {
        let log = &self.inner.log;
        let delta = self.delta();
        let purged_next = self.inner.state.borrow().last_purged.as_ref().map_or(0, |l| l.index + 1);
        let start =
            from.max(purged_next).max(delta).saturating_sub(delta).max(log.log_start_offset());
        let end = to.saturating_sub(delta).min(log.log_end_offset());
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
        let mut offset = start;
        while offset < end {
            let bytes = log.read_bytes(offset, READ_BYTES_MAX).await.map_err(other)?;
            if bytes.is_empty() {
                break;
            }
            let mut pos = 0usize;
            while pos < bytes.len() && offset < end {
                let header = BatchHeader::parse(&bytes[pos..]).map_err(other)?;
                let total = header.total_len();
                if pos + total > bytes.len() {
                    break;
                }
                let base = u64::try_from(header.base_offset).map_err(other)?;
                if base >= offset {
                    let entry = decode_entry(&bytes.slice(pos..pos + total), &header)?;
                    if entry.log_id.index != base + delta {
                        return Err(other(format!(
                            "entry at offset {base} has index {}, expected {}",
                            entry.log_id.index,
                            base + delta
                        )));
                    }
                    out.push(entry);
                    offset = base + 1;
                }
                pos += total;
            }
        }
        Ok(out)
    }
}

/// Encodes one entry as one RecordBatch v2 of one record.
fn encode_entry(entry: &Entry) -> io::Result<Bytes> {
    let value = serde_json::to_vec(entry).map_err(other)?;
    let record = Record {
        attributes: 0,
        timestamp_delta: 0,
        offset_delta: 0,
        key: Some(Bytes::copy_from_slice(&entry.log_id.index.to_be_bytes())),
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
    };
    let mut params = BatchParams::simple(Codec::None, 0, 1);
    params.partition_leader_epoch = i32::try_from(entry.log_id.leader_id.term).unwrap_or(i32::MAX);
    build_batch(&params, &[record]).map_err(other)
}

fn decode_entry(batch: &Bytes, header: &BatchHeader) -> io::Result<Entry> {
    if header.records_count != 1 || batch.len() < HEADER_BYTES {
        return Err(other(format!(
            "metadata batch at {} holds {} records",
            header.base_offset, header.records_count
        )));
    }
    let records = decode_records(&batch.slice(HEADER_BYTES..), 1).map_err(other)?;
    let value = records
        .first()
        .and_then(|r| r.value.as_ref())
        .ok_or_else(|| other("record without value"))?;
    serde_json::from_slice(value).map_err(other)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let from = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(x) => x + 1,
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        self.read_entries(from, to).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.state.borrow().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged = self.inner.state.borrow().last_purged;
        let log = &self.inner.log;
        let last = if log.log_end_offset() > log.log_start_offset() {
            let last_index = log.log_end_offset() - 1 + self.delta();
            self.read_entries(last_index, last_index + 1).await?.pop().map(|e| e.log_id)
        } else {
            None
        };
        let last_log_id = last.or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id })
    }

    /// Remembers the committed log id so that a restarted node re-applies its log up to it at
    /// once instead of showing its last snapshot's image until the quorum commits again.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let bytes = serde_json::to_vec(&committed).map_err(other)?;
        write_unsynced(&self.inner.dir, COMMITTED_FILE, bytes).await
    }

    /// The saved committed log id, if it is readable and within the durable log (the file is
    /// not fsynced, so after a crash it may be torn, or ahead of what the log kept).
    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let Some(bytes) = read_file(&self.inner.dir, COMMITTED_FILE).await? else {
            return Ok(None);
        };
        let committed: Option<LogId> = match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "committed log id unreadable; recovering from the snapshot");
                return Ok(None);
            }
        };
        let Some(c) = committed else { return Ok(None) };
        let held = self.read_entries(c.index, c.index + 1).await?.pop().map(|e| e.log_id);
        let purged = self.inner.state.borrow().last_purged;
        Ok((held == Some(c) || purged.is_some_and(|p| p.index >= c.index)).then_some(c))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.inner.state.borrow_mut().vote = Some(*vote);
        self.persist().await?;
        debug!(vote = %vote, "vote persisted");
        Ok(())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry>,
    {
        let log = &self.inner.log;
        let mut batches = Vec::new();
        let mut first_index = None;
        for entry in entries {
            first_index.get_or_insert(entry.log_id.index);
            batches.extend_from_slice(&encode_entry(&entry)?);
        }
        let Some(first) = first_index else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let expected = log.log_end_offset() + self.delta();
        if first != expected {
            if log.log_end_offset() != log.log_start_offset() || first < expected {
                return Err(other(format!(
                    "append at index {first}, log ends at index {expected}"
                )));
            }
            // An empty log continues after an installed snapshot: move the offset origin.
            self.inner.state.borrow_mut().index_delta = first - log.log_end_offset();
            self.persist().await?;
            info!(
                index = first,
                offset = log.log_end_offset(),
                "metadata log continues at a new index"
            );
        }
        let batches = Bytes::from(batches);
        waiting_for_space("metadata log append", async || {
            log.append(batches.clone()).await.map_err(io::Error::other)
        })
        .await?;
        let synced = log.sync().await.map_err(other);
        callback.io_completed(synced);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let log = &self.inner.log;
        let next_index = last_log_id.map_or(0, |l| l.index + 1);
        let offset = next_index.saturating_sub(self.delta()).max(log.log_start_offset());
        if offset < log.log_end_offset() {
            let end = log.truncate_to(offset).await.map_err(other)?;
            info!(index = next_index, log_end_offset = end, "metadata log suffix truncated");
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let index = log_id.index;
        self.inner.state.borrow_mut().last_purged = Some(log_id);
        self.persist().await?;
        let log = &self.inner.log;
        let offset = (index + 1).saturating_sub(self.delta());
        if offset > log.log_end_offset() {
            // Purging past the end (a snapshot was installed): the log becomes empty and the
            // next entry is index + 1.
            let end = log.log_end_offset();
            if end > log.log_start_offset() {
                log.delete_records(end).await.map_err(other)?;
            }
            self.inner.state.borrow_mut().index_delta = index + 1 - end;
            self.persist().await?;
        } else if offset > log.log_start_offset() {
            log.delete_records(offset).await.map_err(other)?;
        }
        debug!(index, log_start_offset = log.log_start_offset(), "metadata log purged");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odradek_storage::AppendError;
    use odradek_storage::error::IoFailure;

    fn full() -> IoFailure {
        IoFailure::new("write", "/x", io::Error::from_raw_os_error(28))
    }

    #[test]
    fn a_full_disk_is_recognised_through_every_wrapping() {
        assert!(is_disk_full(&io::Error::from_raw_os_error(28)));
        assert!(is_disk_full(&io::Error::other(full())));
        assert!(is_disk_full(&io::Error::other(AppendError::Io(full()))));
        let eio = IoFailure::new("write", "/x", io::Error::from_raw_os_error(5));
        assert!(!is_disk_full(&io::Error::other(eio.clone())));
        assert!(!is_disk_full(&io::Error::other(AppendError::Io(eio))));
        assert!(!is_disk_full(&other(full())), "text alone is not a full disk");
    }

    #[test]
    fn writes_wait_out_a_full_disk_but_not_other_errors() {
        let rt = compio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let mut tries = 0;
            let got = waiting_for_space("test", async || {
                tries += 1;
                if tries < 3 { Err(io::Error::other(full())) } else { Ok(tries) }
            })
            .await;
            assert_eq!(got.expect("succeeds once there is room"), 3);
            let mut tries = 0;
            let got: io::Result<()> = waiting_for_space("test", async || {
                tries += 1;
                Err(io::Error::from_raw_os_error(5))
            })
            .await;
            assert!(got.is_err(), "an I/O error is not waited out");
            assert_eq!(tries, 1);
        });
    }
}
