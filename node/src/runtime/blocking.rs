//! A small pool of threads for the blocking file calls io_uring cannot make for us, so that no
//! shard thread ever blocks on the disk: the durable replacement of a small file (write, fsync,
//! rename, fsync the directory) and the removal of a deleted partition's directory.
//!
//! The queue is bounded ([`QUEUE_JOBS_MAX`]): a shard that finds it full waits (async) for
//! room, it never blocks. Jobs run in the order they were queued on each thread; callers that
//! need one write after another (a file replaced twice) serialize themselves (the catalogue's
//! admin lock, the producer-id reservation lock).

use std::io::Write;
use std::path::{Path, PathBuf};

use futures_channel::oneshot;

/// Jobs that may wait for a pool thread; a sender waits (async) when the queue is full.
pub const QUEUE_JOBS_MAX: usize = 64;
/// Threads in the pool: these calls are rare (admin operations, a producer-id block), and the
/// disk serializes their fsyncs anyway.
pub const THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the pool; clones share it. The threads end when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Blocking {
    jobs: async_channel::Sender<Job>,
}

/// The pool is gone (the node is stopping) or the job panicked.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the blocking pool is not running")]
pub struct PoolGone;

impl Blocking {
    /// Starts the pool's threads.
    pub fn start() -> std::io::Result<Self> {
        let (jobs, queue) = async_channel::bounded::<Job>(QUEUE_JOBS_MAX);
        for i in 0..THREADS {
            let queue = queue.clone();
            std::thread::Builder::new().name(format!("blocking-{i}")).spawn(move || {
                while let Ok(job) = queue.recv_blocking() {
                    job();
                }
            })?;
        }
        Ok(Self { jobs })
    }

    /// Runs `job` on a pool thread and returns its result, without blocking the caller.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolGone>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(job());
        });
        self.jobs.send(job).await.map_err(|_| PoolGone)?;
        rx.await.map_err(|_| PoolGone)
    }

    /// Replaces `path` with `bytes` durably: written to `path.tmp`, fsynced, renamed over
    /// `path`, and the directory fsynced, so after a crash the file holds either the old bytes
    /// or the new ones, whole.
    pub async fn replace_file(&self, path: PathBuf, bytes: Vec<u8>) -> Result<(), ReplaceError> {
        self.run(move || replace_file_now(&path, &bytes)).await?
    }
}

/// Why a file could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Pool(#[from] PoolGone),
}

/// [`Blocking::replace_file`] on the calling thread: for start-up, before any shard runs.
pub fn replace_file_now(path: &Path, bytes: &[u8]) -> Result<(), ReplaceError> {
    let io = |op, path: &Path| {
        let path = path.to_owned();
        move |source| ReplaceError::Io { op, path, source }
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_off_the_calling_thread_and_files_are_replaced_whole() {
        let pool = Blocking::start().expect("pool");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let here = std::thread::current().id();
            let there = pool.run(|| std::thread::current().id()).await.expect("run");
            assert_ne!(here, there, "the job ran on a pool thread");
            pool.replace_file(path.clone(), b"one".to_vec()).await.expect("write");
            pool.replace_file(path.clone(), b"two".to_vec()).await.expect("write");
        });
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert!(!dir.path().join("f.tmp").exists(), "the temporary file was renamed away");
        let missing = dir.path().join("no-such-dir").join("f");
        let err = runtime.block_on(pool.replace_file(missing, Vec::new()));
        assert!(matches!(err, Err(ReplaceError::Io { op: "create", .. })), "{err:?}");
    }
}
