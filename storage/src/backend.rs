//! The narrow file-I/O interface under the log, and its io_uring implementation.
//!
//! Everything the log does to disk goes through [`Backend`] and [`StorageFile`]: positional
//! reads and vectored writes, `fdatasync`, truncation, directory listing, rename and removal.
//! Tests plug in [`crate::sim::SimBackend`] to inject I/O errors and to simulate crashes that
//! keep only fsynced bytes; production uses [`CompioBackend`], which submits every data
//! operation to the calling thread's io_uring through compio.
//!
//! Contracts every implementation keeps:
//! - `write_at` returns only once every byte of every buffer was accepted (short writes are
//!   retried); the bytes are then visible to `read_at` on any handle of the same file.
//! - `sync_data` returns once every byte written before the call is on stable storage.
//! - A file removed or renamed over stays readable through handles opened before (Unix
//!   semantics), so a reader holding a segment's handle never sees it change under it.
//! - Names (create, rename, remove) are durable only after `sync_dir` of their directory.
// `async fn` in these traits is deliberate: a backend lives on one shard thread and its futures
// are never sent to another thread, so no `Send` bound is wanted.
#![allow(async_fn_in_trait)]

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAt, AsyncWriteAt};

/// Largest number of buffers handed to one `pwritev` (Linux `IOV_MAX`).
pub const IOVECS_PER_WRITE_MAX: usize = 1024;
/// Alignment of direct I/O: file position, length and buffer address of every direct write.
pub const DIRECT_ALIGN: usize = 4096;
/// Bound on writeback hints ([`StorageFile::start_writeback`]) running at once, per process.
pub const WRITEBACKS_IN_FLIGHT_MAX: usize = 8;

/// Writeback hints under way, all shards together.
static WRITEBACKS_IN_FLIGHT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);
/// Bound on each kind of cache hint ([`StorageFile::drop_cache`], [`StorageFile::prefetch`])
/// running at once off the shard threads, per process; a hint beyond it is skipped.
pub const CACHE_HINTS_IN_FLIGHT_MAX: usize = 8;
/// Drop-behind hints under way, all shards together.
static CACHE_HINTS_IN_FLIGHT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);
/// Read-ahead hints under way, all shards together (bounded by the same maximum).
static READ_AHEADS_IN_FLIGHT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// The CPUs compio's blocking-pool threads run on (see [`set_pool_cpus`]).
static POOL_CPUS: std::sync::OnceLock<rustix::thread::CpuSet> = std::sync::OnceLock::new();

/// Lets the blocking-pool threads that run storage's hints and listings use `cpus` (the
/// process's CPUs, before shards pin themselves). A pool thread is started by the shard thread
/// that first needs it and so inherits that shard's pinning: without this, a hint that blocks in
/// the kernel (ext4 allocating blocks for writeback) competes with its own shard for one core.
/// The first call wins; without any, pool threads keep what they inherited.
pub fn set_pool_cpus(cpus: rustix::thread::CpuSet) {
    let _ = POOL_CPUS.set(cpus);
}

/// On a blocking-pool thread: moves it to [`set_pool_cpus`]'s CPUs, once per thread.
fn unpin_pool_thread() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if DONE.with(|d| d.replace(true)) {
        return;
    }
    if let Some(cpus) = POOL_CPUS.get()
        && let Err(e) = rustix::thread::sched_setaffinity(None, cpus)
    {
        tracing::debug!(error = %e, "blocking-pool thread keeps its inherited CPUs");
    }
}

/// Runs `posix_fadvise(advice)` on `[pos, pos + len)` of `file` on compio's blocking pool,
/// detached, instead of on the calling (shard) thread, counting it in `in_flight`:
/// `DONTNEED` starts writeback of dirty pages and frees every clean page of the range, `WILLNEED` allocates the pages and submits the
/// reads, and either can take milliseconds (more on a busy device or a VM where fresh memory
/// is slow to touch) during which nothing else on the shard runs. Returns whether the hint was
/// handed over: false, doing nothing, while `max` are already under way.
fn advise_off_thread(
    file: &File,
    pos: u64,
    len: u64,
    advice: rustix::fs::Advice,
    (in_flight, max): (&'static std::sync::atomic::AtomicUsize, usize),
) -> io::Result<bool> {
    use std::sync::atomic::Ordering;
    let Some(len) = std::num::NonZeroU64::new(len) else { return Ok(true) };
    let taken =
        in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
    if taken.is_err() {
        return Ok(false);
    }
    // The pool thread needs a descriptor of its own (`Send`, alive until it is done).
    let fd = match file.as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(e);
        }
    };
    // Detached: nobody waits for it (dropping the handle would cancel it before it ran).
    compio::runtime::spawn_blocking(move || {
        unpin_pool_thread();
        let advised = rustix::fs::fadvise(&fd, pos, Some(len), advice);
        in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Err(e) = advised {
            tracing::debug!(error = %e, ?advice, "cache hint refused");
        }
    })
    .detach();
    Ok(true)
}

/// A buffer whose contents start at a [`DIRECT_ALIGN`]-aligned address, for direct writes.
///
/// It is an ordinary, fully initialised `Vec<u8>` with `DIRECT_ALIGN` bytes of slack; the usable
/// window starts at the first aligned address inside it. The allocation never moves (the vector
/// is never grown), so the window stays aligned; allocating it touches every page once, so
/// reusing it costs no page faults.
#[derive(Debug)]
pub struct AlignedBuf {
    vec: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `capacity` usable bytes, rounded up to a multiple of [`DIRECT_ALIGN`].
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.div_ceil(DIRECT_ALIGN).max(1) * DIRECT_ALIGN;
        let vec = vec![0u8; capacity + DIRECT_ALIGN];
        let start = (DIRECT_ALIGN - (vec.as_ptr() as usize % DIRECT_ALIGN)) % DIRECT_ALIGN;
        Self { vec, start, len: 0 }
    }
    pub fn capacity(&self) -> usize {
        (self.vec.len() - self.start) / DIRECT_ALIGN * DIRECT_ALIGN
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn room(&self) -> usize {
        self.capacity() - self.len
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }
    /// Appends as much of `src` as fits; returns how many bytes were taken.
    pub fn fill_from(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.room());
        let at = self.start + self.len;
        self.vec[at..at + n].copy_from_slice(&src[..n]);
        self.len += n;
        n
    }
    /// Zero-fills up to the next multiple of [`DIRECT_ALIGN`].
    pub fn pad_to_alignment(&mut self) {
        let padded = self.len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        let at = self.start;
        self.vec[at + self.len..at + padded].fill(0);
        self.len = padded;
    }
    /// The aligned window `[0, len)` as a compio buffer, and the buffer back afterwards.
    fn into_io(self) -> (compio::buf::Slice<Vec<u8>>, usize) {
        let (start, len) = (self.start, self.len);
        (IoBuf::slice(self.vec, start..start + len), len)
    }
    fn from_io(slice: compio::buf::Slice<Vec<u8>>, start: usize) -> Self {
        Self { vec: slice.into_inner(), start, len: 0 }
    }
}

/// An open file: cheap to clone (clones share one descriptor).
pub trait StorageFile: Clone + 'static {
    /// Reads up to `len` bytes at `pos`; fewer only at end of file.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes>;
    /// Writes all `bufs`, back to back, starting at `pos`.
    async fn write_at(&self, pos: u64, bufs: Vec<Bytes>) -> io::Result<()>;
    /// `fdatasync`: every byte written before the call is durable when it returns.
    async fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    async fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current size in bytes.
    async fn size(&self) -> io::Result<u64>;
    /// Writes the whole aligned buffer at `pos` (a multiple of [`DIRECT_ALIGN`]) through a
    /// handle from [`Backend::open_direct`], bypassing the page cache. Returns the buffer
    /// (cleared) for reuse whatever the outcome.
    async fn write_direct(&self, pos: u64, buf: AlignedBuf) -> (io::Result<()>, AlignedBuf);
    /// Asks the kernel to drop clean cached pages of `[pos, pos + len)`
    /// (`posix_fadvise(DONTNEED)`). Only a hint: dirty pages stay until written back.
    fn drop_cache(&self, pos: u64, len: u64) -> io::Result<()>;
    /// Asks the kernel to start writing the dirty pages of `[pos, pos + len)` to the device,
    /// without waiting (`posix_fadvise(DONTNEED)`, which also drops pages already clean there),
    /// off the calling thread, since starting writeback can block. Only a hint: durability
    /// still comes from `sync_data`, which also reports any writeback error. Returns false,
    /// doing nothing, while [`WRITEBACKS_IN_FLIGHT_MAX`] are already under way.
    fn start_writeback(&self, pos: u64, len: u64) -> bool {
        let _ = (pos, len);
        true
    }
    /// Asks the kernel to start reading `[pos, pos + len)` into the page cache in the
    /// background (`posix_fadvise(WILLNEED)`), so that a sequential reader finds it there. Only
    /// a hint: `Ok(false)` when it was skipped (too many under way), so the caller asks again.
    fn prefetch(&self, pos: u64, len: u64) -> io::Result<bool> {
        let _ = (pos, len);
        Ok(true)
    }
    /// The kernel descriptor, for zero-copy sends (`sendfile`/`splice`); `None` for files that
    /// live only in memory.
    fn raw_fd(&self) -> Option<RawFd>;
}

/// A file system as the log needs it.
pub trait Backend: Clone + 'static {
    type File: StorageFile;
    /// Opens `path` for reading and writing, creating it when `create` is set.
    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    /// Opens an existing file for direct (page-cache-bypassing) writes with
    /// [`StorageFile::write_direct`]; fails with `InvalidInput` where the file system has no
    /// direct I/O (tmpfs), and the caller then writes through the page cache.
    async fn open_direct(&self, path: &Path) -> io::Result<Self::File>;
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) in the directory, in no particular order.
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Atomically replaces `to` with `from`.
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    async fn sync_dir(&self, path: &Path) -> io::Result<()>;
    async fn exists(&self, path: &Path) -> io::Result<bool>;
}

/// Drops the first `written` bytes from a queue of buffers, after a vectored write took them
/// (the kernel may take part of a buffer).
pub fn advance(pending: &mut std::collections::VecDeque<Bytes>, mut written: usize) {
    while written > 0 {
        let Some(front) = pending.front_mut() else { return };
        if written >= front.len() {
            written -= front.len();
            pending.pop_front();
        } else {
            *front = Bytes::slice(front, written..);
            written = 0;
        }
    }
}

/// The production backend: compio on io_uring, one ring per shard thread.
///
/// Must be used from inside a compio runtime. Directory listing uses `std::fs::read_dir`
/// (io_uring has no `getdents`) and the cache hints `posix_fadvise`: both run on compio's
/// blocking pool, never on the calling shard thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompioBackend;

/// A segment or index file on disk.
#[derive(Debug, Clone)]
pub struct CompioFile {
    file: File,
    /// The injected fault covering this file (`faults` feature, tests only).
    #[cfg(feature = "faults")]
    fault: Option<std::sync::Arc<crate::faults::FaultRule>>,
}

impl CompioFile {
    fn new(file: File, path: &Path) -> Self {
        #[cfg(not(feature = "faults"))]
        let _ = path;
        Self {
            file,
            #[cfg(feature = "faults")]
            fault: crate::faults::rule_for(path),
        }
    }

    /// Writes all `bufs` at `pos` with `pwritev`, retrying short writes.
    async fn write_all_at(&self, mut pos: u64, bufs: Vec<Bytes>) -> io::Result<()> {
        let mut pending: std::collections::VecDeque<Bytes> =
            bufs.into_iter().filter(|b| !b.is_empty()).collect();
        while !pending.is_empty() {
            let take = pending.len().min(IOVECS_PER_WRITE_MAX);
            let chunk: Vec<Bytes> = pending.iter().take(take).cloned().collect();
            let BufResult(res, _) = (&self.file).write_vectored_at(chunk, pos).await;
            let written = res?;
            if written == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "pwritev wrote 0 bytes"));
            }
            pos += written as u64;
            advance(&mut pending, written);
        }
        Ok(())
    }

    /// With the `faults` feature: fails once the injected fault has tripped. A no-op without.
    fn check_fault(&self) -> io::Result<()> {
        #[cfg(feature = "faults")]
        if let Some(rule) = &self.fault {
            rule.check()?;
        }
        Ok(())
    }
}

impl CompioFile {
    /// The file, for I/O the storage API does not cover (a fetch splicing a range of it to a
    /// socket).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl StorageFile for CompioFile {
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let mut buf: Vec<u8> = Vec::with_capacity(len);
        while buf.len() < len {
            let filled = buf.len();
            // The read fills the slice that starts at `filled`; compio then sets `buf.len()`.
            let BufResult(res, slice) =
                self.file.read_at(IoBuf::slice(buf, filled..len), pos + filled as u64).await;
            buf = slice.into_inner();
            if res? == 0 {
                break;
            }
        }
        Ok(Bytes::from(buf))
    }

    async fn write_at(&self, pos: u64, bufs: Vec<Bytes>) -> io::Result<()> {
        #[cfg(feature = "faults")]
        if let Some(rule) = &self.fault {
            let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
            let admitted = rule.admit_write(total)?;
            if admitted < total {
                // A device failing mid-write: the bytes up to the budget land, then the error.
                let mut kept = Vec::new();
                let mut left = admitted as usize;
                for b in bufs {
                    if left == 0 {
                        break;
                    }
                    let n = b.len().min(left);
                    kept.push(Bytes::slice(&b, ..n));
                    left -= n;
                }
                self.write_all_at(pos, kept).await?;
                return Err(rule.trip());
            }
        }
        self.write_all_at(pos, bufs).await
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.check_fault()?;
        self.file.sync_data().await
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_fault()?;
        self.file.set_len(len).await
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata().await?.len())
    }

    async fn write_direct(&self, pos: u64, buf: AlignedBuf) -> (io::Result<()>, AlignedBuf) {
        assert_eq!(pos % DIRECT_ALIGN as u64, 0, "direct write position must be aligned");
        assert_eq!(buf.len() % DIRECT_ALIGN, 0, "direct write length must be aligned");
        #[cfg(feature = "faults")]
        if let Some(rule) = &self.fault {
            let len = buf.len() as u64;
            let failed = match rule.admit_write(len) {
                Ok(admitted) if admitted == len => None,
                Ok(_) => Some(rule.trip()),
                Err(e) => Some(e),
            };
            if let Some(e) = failed {
                let mut buf = buf;
                buf.clear();
                return (Err(e), buf);
            }
        }
        let start = buf.start;
        let (mut slice, len) = buf.into_io();
        let mut done = 0usize;
        let result = loop {
            if done == len {
                break Ok(());
            }
            let BufResult(res, back) = (&self.file).write_at(slice, pos + done as u64).await;
            slice = back;
            match res {
                Ok(0) => {
                    break Err(io::Error::new(io::ErrorKind::WriteZero, "direct write of 0 bytes"));
                }
                Ok(n) if n % DIRECT_ALIGN != 0 && done + n != len => {
                    break Err(io::Error::other(format!("short direct write of {n} bytes")));
                }
                Ok(n) => {
                    done += n;
                    let (begin, end) = (start + done, start + len);
                    slice = IoBuf::slice(slice.into_inner(), begin..end);
                }
                Err(e) => break Err(e),
            }
        };
        (result, AlignedBuf::from_io(slice, start))
    }

    fn drop_cache(&self, pos: u64, len: u64) -> io::Result<()> {
        // Skipped when too many hints are under way: the kernel reclaims those pages anyway.
        let hints = (&CACHE_HINTS_IN_FLIGHT, CACHE_HINTS_IN_FLIGHT_MAX);
        advise_off_thread(&self.file, pos, len, rustix::fs::Advice::DontNeed, hints).map(drop)
    }

    fn start_writeback(&self, pos: u64, len: u64) -> bool {
        // `DONTNEED` writes dirty pages back without waiting and drops only clean ones.
        let slots = (&WRITEBACKS_IN_FLIGHT, WRITEBACKS_IN_FLIGHT_MAX);
        match advise_off_thread(&self.file, pos, len, rustix::fs::Advice::DontNeed, slots) {
            Ok(handed) => handed,
            Err(e) => {
                tracing::debug!(error = %e, "writeback hint skipped: cannot duplicate the descriptor");
                false
            }
        }
    }

    fn prefetch(&self, pos: u64, len: u64) -> io::Result<bool> {
        // Its own slots: drop-behind hints, many under write load, must not crowd it out.
        let slots = (&READ_AHEADS_IN_FLIGHT, CACHE_HINTS_IN_FLIGHT_MAX);
        advise_off_thread(&self.file, pos, len, rustix::fs::Advice::WillNeed, slots)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

impl Backend for CompioBackend {
    type File = CompioFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<CompioFile> {
        let file = OpenOptions::new().read(true).write(true).create(create).open(path).await?;
        Ok(CompioFile::new(file, path))
    }

    async fn open_direct(&self, path: &Path) -> io::Result<CompioFile> {
        let direct = rustix::fs::OFlags::DIRECT.bits() as i32;
        let file = OpenOptions::new().write(true).custom_flags(direct).open(path).await?;
        Ok(CompioFile::new(file, path))
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        compio::fs::create_dir_all(path).await
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        // io_uring has no `getdents`: the listing (a directory read from the device when it is
        // not cached, and a long one for a partition of many segments) runs on compio's
        // blocking pool, not on the shard thread.
        let path = path.to_owned();
        let listed = compio::runtime::spawn_blocking(move || {
            unpin_pool_thread();
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&path)? {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        });
        listed.await.map_err(|e| io::Error::other(format!("directory listing failed: {e:?}")))?
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        compio::fs::remove_file(path).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        compio::fs::rename(from, to).await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path).await?.sync_all().await
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        match compio::fs::metadata(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Yields to the executor once, so long work on a shard lets other tasks run (any executor).
pub fn yield_now() -> impl Future<Output = ()> {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
    YieldNow(false)
}

/// Removes a file; a file that is already gone is not an error.
pub async fn remove_if_exists<B: Backend>(backend: &B, path: &Path) -> io::Result<()> {
    match backend.remove_file(path).await {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_and_cache_hints_run_off_the_calling_thread_and_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let backend = CompioBackend;
            let file = backend.open(&dir.path().join("a.log"), true).await.expect("open");
            file.write_at(0, vec![Bytes::from(vec![7u8; 64 * 1024])]).await.expect("write");
            backend.open(&dir.path().join("b.index"), true).await.expect("open");
            let mut names = backend.list_dir(dir.path()).await.expect("list");
            names.sort();
            assert_eq!(names, ["a.log", "b.index"]);
            let missing = backend.list_dir(&dir.path().join("none")).await;
            assert_eq!(missing.expect_err("missing").kind(), io::ErrorKind::NotFound);

            file.drop_cache(0, 64 * 1024).expect("drop");
            assert!(file.prefetch(0, 64 * 1024).expect("prefetch"), "handed over");
            // The hints ran on the pool and gave their slots back.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while CACHE_HINTS_IN_FLIGHT.load(std::sync::atomic::Ordering::Acquire)
                + READ_AHEADS_IN_FLIGHT.load(std::sync::atomic::Ordering::Acquire)
                > 0
            {
                assert!(std::time::Instant::now() < deadline, "cache hints never finished");
                compio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert_eq!(file.read_at(0, 16).await.expect("read").as_ref(), [7u8; 16]);
        });
    }
}
