//! A [`Backend`] wrapper that counts and times the file operations the log issues, so the
//! benchmark can report how many `fdatasync`s and `pwritev`s a run took (how well group commit
//! shared them) and what the disk itself spent on each.
//!
//! It adds two `Instant::now()` calls and a histogram update per operation, which is noise next
//! to a system call; `--no-io-counters` runs the bare [`odradek_storage::CompioBackend`].
//! It also counts the log's page-cache drop-behind calls (`StorageFile::drop_cache`).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use odradek_storage::backend::AlignedBuf;
use odradek_storage::{Backend, StorageFile};

/// Latency histograms cover 1 µs to one hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .expect("constant histogram bounds are valid (1 <= low, high >= 2 * low, sigfig 3)")
}

/// Records `start.elapsed()` in microseconds (at least 1).
pub fn record_since(hist: &mut Histogram<u64>, start: Instant) {
    let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
    hist.saturating_record(us);
}

/// What the log did to the disk while `measuring` was set.
#[derive(Debug)]
pub struct IoCounters {
    /// Only operations that start while this is set are counted.
    pub measuring: Cell<bool>,
    /// `drop_cache` calls the log made (`posix_fadvise(DONTNEED)`), and bytes they covered.
    pub drops: Cell<u64>,
    pub dropped_bytes: Cell<u64>,
    pub writes: Cell<u64>,
    pub write_bytes: Cell<u64>,
    pub write_buffers: Cell<u64>,
    pub fdatasyncs: Cell<u64>,
    pub dir_syncs: Cell<u64>,
    pub write_us: RefCell<Histogram<u64>>,
    pub fdatasync_us: RefCell<Histogram<u64>>,
}

impl Default for IoCounters {
    fn default() -> Self {
        Self {
            measuring: Cell::new(false),
            drops: Cell::new(0),
            dropped_bytes: Cell::new(0),
            writes: Cell::new(0),
            write_bytes: Cell::new(0),
            write_buffers: Cell::new(0),
            fdatasyncs: Cell::new(0),
            dir_syncs: Cell::new(0),
            write_us: RefCell::new(new_histogram()),
            fdatasync_us: RefCell::new(new_histogram()),
        }
    }
}

fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get().saturating_add(by));
}

/// Wraps a backend; every file it opens reports to the shared [`IoCounters`].
#[derive(Debug, Clone)]
pub struct CountingBackend<B> {
    inner: B,
    counters: Rc<IoCounters>,
}

impl<B> CountingBackend<B> {
    pub fn new(inner: B, counters: Rc<IoCounters>) -> Self {
        Self { inner, counters }
    }
}

/// A file of a [`CountingBackend`].
#[derive(Debug, Clone)]
pub struct CountingFile<F> {
    inner: F,
    counters: Rc<IoCounters>,
}

impl<F: StorageFile> StorageFile for CountingFile<F> {
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.inner.read_at(pos, len).await
    }

    async fn write_at(&self, pos: u64, bufs: Vec<Bytes>) -> io::Result<()> {
        let c = &self.counters;
        let bytes: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let buffers = bufs.len() as u64;
        let measuring = c.measuring.get();
        let start = Instant::now();
        let res = self.inner.write_at(pos, bufs).await;
        if measuring {
            record_since(&mut c.write_us.borrow_mut(), start);
            bump(&c.writes, 1);
            bump(&c.write_bytes, bytes);
            bump(&c.write_buffers, buffers);
        }
        res
    }

    async fn sync_data(&self) -> io::Result<()> {
        let c = &self.counters;
        let measuring = c.measuring.get();
        let start = Instant::now();
        let res = self.inner.sync_data().await;
        if measuring {
            record_since(&mut c.fdatasync_us.borrow_mut(), start);
            bump(&c.fdatasyncs, 1);
        }
        res
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len).await
    }

    async fn size(&self) -> io::Result<u64> {
        self.inner.size().await
    }

    async fn write_direct(&self, pos: u64, buf: AlignedBuf) -> (io::Result<()>, AlignedBuf) {
        let c = &self.counters;
        let bytes = buf.len() as u64;
        let measuring = c.measuring.get();
        let start = Instant::now();
        let res = self.inner.write_direct(pos, buf).await;
        if measuring {
            record_since(&mut c.write_us.borrow_mut(), start);
            bump(&c.writes, 1);
            bump(&c.write_bytes, bytes);
            bump(&c.write_buffers, 1);
        }
        res
    }

    fn drop_cache(&self, pos: u64, len: u64) -> io::Result<()> {
        let res = self.inner.drop_cache(pos, len);
        if res.is_ok() {
            bump(&self.counters.drops, 1);
            bump(&self.counters.dropped_bytes, len);
        }
        res
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.inner.raw_fd()
    }
}

impl<B: Backend> Backend for CountingBackend<B> {
    type File = CountingFile<B::File>;

    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File> {
        let inner = self.inner.open(path, create).await?;
        Ok(CountingFile { inner, counters: self.counters.clone() })
    }

    async fn open_direct(&self, path: &Path) -> io::Result<Self::File> {
        let inner = self.inner.open_direct(path).await?;
        Ok(CountingFile { inner, counters: self.counters.clone() })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path).await
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path).await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to).await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.counters.measuring.get() {
            bump(&self.counters.dir_syncs, 1);
        }
        self.inner.sync_dir(path).await
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odradek_storage::CompioBackend;

    #[test]
    fn counts_writes_syncs_and_cache_drops() {
        let dir = tempfile_dir();
        let counters = Rc::new(IoCounters::default());
        let backend = CountingBackend::new(CompioBackend, counters.clone());
        let runtime = compio::runtime::Runtime::new().expect("compio runtime");
        runtime.block_on(async {
            let file = backend.open(&dir.join("f"), true).await.expect("open");
            // Not measuring yet: nothing is counted.
            file.write_at(0, vec![Bytes::from(vec![1u8; 1 << 20])]).await.expect("write");
            counters.measuring.set(true);
            let more = vec![Bytes::from(vec![2u8; 4096]), Bytes::from(vec![3u8; 4096])];
            file.write_at(1 << 20, more).await.expect("write");
            file.sync_data().await.expect("sync");
            file.drop_cache(0, 1 << 20).expect("fadvise");
            // Dropped pages read back from disk unchanged.
            let back = file.read_at(0, 16).await.expect("read");
            assert_eq!(&back[..], &[1u8; 16]);
        });
        assert_eq!(counters.writes.get(), 1);
        assert_eq!(counters.write_buffers.get(), 2);
        assert_eq!(counters.write_bytes.get(), 8192);
        assert_eq!(counters.fdatasyncs.get(), 1);
        assert_eq!(counters.fdatasync_us.borrow().len(), 1);
        assert_eq!((counters.drops.get(), counters.dropped_bytes.get()), (1, 1 << 20));
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("odradek-bench-counting-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
