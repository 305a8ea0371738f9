//! An in-memory [`Backend`] for tests: deterministic fault injection and crash simulation.
//!
//! Modelled on redb's crash-consistency backend. Every file keeps two images: what the page
//! cache holds (`data`) and what is on stable storage (`durable`), plus the list of writes and
//! truncations since the last `sync_data`. Names (create, rename, remove) likewise become durable
//! only with `sync_dir` of their directory.
//!
//! [`SimBackend::crash`] returns the file system as a machine would find it after power loss:
//! the durable names plus a random, in-order prefix of the name changes since, and for each file
//! its durable bytes plus a random in-order prefix of its unsynced writes, the last of which may
//! be torn at any byte. Directories are durable as soon as they are created.
//!
//! [`SimBackend::fail_after`] makes every I/O call fail with `EIO` once N more calls were made;
//! [`SimBackend::set_capacity`] makes writes past a total size fail with `ENOSPC`.
#![allow(clippy::type_complexity)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use crate::backend::{AlignedBuf, Backend, DIRECT_ALIGN, StorageFile};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

#[derive(Debug, Clone)]
enum FileOp {
    Write { pos: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct FileData {
    data: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<FileOp>,
}

type FileRef = Rc<RefCell<FileData>>;

#[derive(Debug, Clone)]
enum NameOp {
    Link { path: PathBuf, file: FileRef },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl NameOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            NameOp::Link { path, .. } | NameOp::Unlink { path } => path.parent(),
            NameOp::Rename { to, .. } => to.parent(),
        }
    }
}

#[derive(Debug, Default)]
struct Fs {
    names: BTreeMap<PathBuf, FileRef>,
    durable_names: BTreeMap<PathBuf, FileRef>,
    unsynced_names: Vec<NameOp>,
    dirs: BTreeSet<PathBuf>,
    calls: u64,
    writes: u64,
    syncs: u64,
    dropped_bytes: u64,
    /// Ranges the log asked to start writing back, in order.
    writebacks: Vec<(u64, u64)>,
    fail_from_call: Option<u64>,
    capacity_bytes: Option<u64>,
    yield_on_io: bool,
    no_direct_io: bool,
    /// How long each data write and each `sync_data` takes (a slow device).
    io_delay: Option<std::time::Duration>,
}

impl Fs {
    fn charge(&mut self) -> io::Result<()> {
        self.calls += 1;
        match self.fail_from_call {
            Some(n) if self.calls > n => Err(io::Error::from_raw_os_error(EIO)),
            _ => Ok(()),
        }
    }
    fn used_bytes(&self) -> u64 {
        self.names.values().map(|f| f.borrow().data.len() as u64).sum()
    }
}

/// Shared handle to one simulated file system.
#[derive(Debug, Clone, Default)]
pub struct SimBackend {
    fs: Rc<RefCell<Fs>>,
}

/// A handle to a simulated file; stays usable after the name is removed.
#[derive(Debug, Clone)]
pub struct SimFile {
    fs: Rc<RefCell<Fs>>,
    file: FileRef,
}

async fn maybe_yield(fs: &Rc<RefCell<Fs>>) {
    let y = fs.borrow().yield_on_io;
    if y {
        crate::backend::yield_now().await;
    }
}

async fn maybe_delay(fs: &Rc<RefCell<Fs>>) {
    let delay = fs.borrow().io_delay;
    if let Some(d) = delay {
        compio::time::sleep(d).await;
    }
}

/// A tiny deterministic generator (xorshift64*), so crashes are reproducible from a seed.
#[derive(Debug, Clone)]
pub struct SimRng(u64);
impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..=n`.
    pub fn upto(&mut self, n: usize) -> usize {
        (self.next_u64() % (n as u64 + 1)) as usize
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

fn apply(data: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { pos, bytes } => {
            let pos = *pos as usize;
            if data.len() < pos + bytes.len() {
                data.resize(pos + bytes.len(), 0);
            }
            data[pos..pos + bytes.len()].copy_from_slice(bytes);
        }
        FileOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

impl SimBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every simulated I/O call yield to the executor once, so that concurrent appends,
    /// syncs and reads interleave as they would on a real ring.
    pub fn set_yield_on_io(&self, on: bool) {
        self.fs.borrow_mut().yield_on_io = on;
    }

    /// Makes every data write and `sync_data` take `delay` (a device holding requests up).
    pub fn set_io_delay(&self, delay: Option<std::time::Duration>) {
        self.fs.borrow_mut().io_delay = delay;
    }

    /// Makes `open_direct` fail as on a file system without direct I/O (tmpfs).
    pub fn set_no_direct_io(&self, on: bool) {
        self.fs.borrow_mut().no_direct_io = on;
    }

    /// Every I/O call after the next `calls` ones fails with `EIO`, until [`Self::heal`].
    pub fn fail_after(&self, calls: u64) {
        let mut fs = self.fs.borrow_mut();
        fs.fail_from_call = Some(fs.calls + calls);
    }

    /// Stops failing I/O calls.
    pub fn heal(&self) {
        self.fs.borrow_mut().fail_from_call = None;
    }

    /// `(write_at, sync_data)` calls that succeeded so far: lets tests see coalescing and
    /// group commit at work.
    pub fn write_sync_counts(&self) -> (u64, u64) {
        let fs = self.fs.borrow();
        (fs.writes, fs.syncs)
    }

    /// Bytes the log asked to drop from the (simulated) page cache so far.
    pub fn dropped_cache_bytes(&self) -> u64 {
        self.fs.borrow().dropped_bytes
    }

    /// `(position, length)` of every writeback the log asked to start, in order.
    pub fn writeback_ranges(&self) -> Vec<(u64, u64)> {
        self.fs.borrow().writebacks.clone()
    }

    /// I/O calls made so far.
    pub fn calls(&self) -> u64 {
        self.fs.borrow().calls
    }

    /// Writes that would grow the total size of all files past `bytes` fail with `ENOSPC`.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.fs.borrow_mut().capacity_bytes = bytes;
    }

    /// The current contents of a file as the page cache sees it (for tests).
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.fs.borrow().names.get(path).map(|f| f.borrow().data.clone())
    }

    /// Overwrites a file's contents in place, durable at once (for corruption tests).
    pub fn poke(&self, path: &Path, contents: Vec<u8>) -> bool {
        let fs = self.fs.borrow();
        let Some(file) = fs.names.get(path) else { return false };
        let mut f = file.borrow_mut();
        f.data = contents.clone();
        f.durable = contents;
        f.unsynced.clear();
        true
    }

    /// The names of every file, in order (for tests).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.fs.borrow().names.keys().cloned().collect()
    }

    /// The file system after a simulated power loss; see the module docs. The returned backend
    /// shares nothing with `self`.
    pub fn crash(&self, seed: u64) -> SimBackend {
        let mut rng = SimRng::new(seed);
        let fs = self.fs.borrow();
        let mut names = fs.durable_names.clone();
        let kept_name_ops = rng.upto(fs.unsynced_names.len());
        for op in &fs.unsynced_names[..kept_name_ops] {
            match op {
                NameOp::Link { path, file } => {
                    names.insert(path.clone(), file.clone());
                }
                NameOp::Unlink { path } => {
                    names.remove(path);
                }
                NameOp::Rename { from, to } => {
                    if let Some(f) = names.remove(from) {
                        names.insert(to.clone(), f);
                    }
                }
            }
        }
        let mut fresh: Vec<(*const RefCell<FileData>, FileRef)> = Vec::new();
        let mut out = Fs { dirs: fs.dirs.clone(), ..Fs::default() };
        for (path, file) in names {
            let key = Rc::as_ptr(&file);
            let existing = fresh.iter().find(|(k, _)| *k == key).map(|(_, f)| f.clone());
            let new_file = existing.unwrap_or_else(|| {
                let f = file.borrow();
                let mut data = f.durable.clone();
                let kept = rng.upto(f.unsynced.len());
                for (i, op) in f.unsynced[..kept].iter().enumerate() {
                    match op {
                        FileOp::Write { pos, bytes } if i + 1 == kept => {
                            let torn = rng.upto(bytes.len());
                            apply(
                                &mut data,
                                &FileOp::Write { pos: *pos, bytes: bytes[..torn].to_vec() },
                            );
                        }
                        _ => apply(&mut data, op),
                    }
                }
                let nf = Rc::new(RefCell::new(FileData {
                    durable: data.clone(),
                    data,
                    unsynced: Vec::new(),
                }));
                fresh.push((key, nf.clone()));
                nf
            });
            out.durable_names.insert(path.clone(), new_file.clone());
            out.names.insert(path, new_file);
        }
        SimBackend { fs: Rc::new(RefCell::new(out)) }
    }
}

impl StorageFile for SimFile {
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        maybe_yield(&self.fs).await;
        self.fs.borrow_mut().charge()?;
        let f = self.file.borrow();
        let start = (pos as usize).min(f.data.len());
        let end = start.saturating_add(len).min(f.data.len());
        Ok(Bytes::copy_from_slice(&f.data[start..end]))
    }

    async fn write_at(&self, pos: u64, bufs: Vec<Bytes>) -> io::Result<()> {
        maybe_yield(&self.fs).await;
        maybe_delay(&self.fs).await;
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut f = self.file.borrow_mut();
        let growth = (pos as usize + total).saturating_sub(f.data.len()) as u64;
        if let Some(cap) = fs.capacity_bytes {
            drop(f);
            if fs.used_bytes() + growth > cap {
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            f = self.file.borrow_mut();
        }
        let mut bytes = Vec::with_capacity(total);
        for b in &bufs {
            bytes.extend_from_slice(b);
        }
        let op = FileOp::Write { pos, bytes };
        apply(&mut f.data, &op);
        f.unsynced.push(op);
        fs.writes += 1;
        Ok(())
    }

    async fn sync_data(&self) -> io::Result<()> {
        maybe_yield(&self.fs).await;
        maybe_delay(&self.fs).await;
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        fs.syncs += 1;
        let mut f = self.file.borrow_mut();
        f.durable = f.data.clone();
        f.unsynced.clear();
        Ok(())
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        maybe_yield(&self.fs).await;
        self.fs.borrow_mut().charge()?;
        let mut f = self.file.borrow_mut();
        let op = FileOp::SetLen(len);
        apply(&mut f.data, &op);
        f.unsynced.push(op);
        Ok(())
    }

    async fn size(&self) -> io::Result<u64> {
        self.fs.borrow_mut().charge()?;
        Ok(self.file.borrow().data.len() as u64)
    }

    async fn write_direct(&self, pos: u64, mut buf: AlignedBuf) -> (io::Result<()>, AlignedBuf) {
        maybe_delay(&self.fs).await;
        assert_eq!(pos % DIRECT_ALIGN as u64, 0, "direct write position must be aligned");
        assert_eq!(buf.len() % DIRECT_ALIGN, 0, "direct write length must be aligned");
        let bytes = Bytes::copy_from_slice(buf.as_slice());
        buf.clear();
        (self.write_at(pos, vec![bytes]).await, buf)
    }

    fn drop_cache(&self, _pos: u64, len: u64) -> io::Result<()> {
        self.fs.borrow_mut().dropped_bytes += len;
        Ok(())
    }

    fn start_writeback(&self, pos: u64, len: u64) -> bool {
        self.fs.borrow_mut().writebacks.push((pos, len));
        true
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

impl Backend for SimBackend {
    type File = SimFile;

    async fn open_direct(&self, path: &Path) -> io::Result<SimFile> {
        if self.fs.borrow().no_direct_io {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        self.open(path, false).await
    }

    async fn open(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        maybe_yield(&self.fs).await;
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        if let Some(file) = fs.names.get(path) {
            return Ok(SimFile { fs: self.fs.clone(), file: file.clone() });
        }
        let parent_exists = path.parent().is_some_and(|p| fs.dirs.contains(p));
        if !create || !parent_exists {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let file: FileRef = Rc::default();
        fs.names.insert(path.to_path_buf(), file.clone());
        fs.unsynced_names.push(NameOp::Link { path: path.to_path_buf(), file: file.clone() });
        Ok(SimFile { fs: self.fs.clone(), file })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        for dir in path.ancestors() {
            fs.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        if !fs.dirs.contains(path) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(fs
            .names
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        maybe_yield(&self.fs).await;
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        if fs.names.remove(path).is_none() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        fs.unsynced_names.push(NameOp::Unlink { path: path.to_path_buf() });
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        maybe_yield(&self.fs).await;
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        let Some(file) = fs.names.remove(from) else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        fs.names.insert(to.to_path_buf(), file);
        fs.unsynced_names.push(NameOp::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        maybe_yield(&self.fs).await;
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        let ops = std::mem::take(&mut fs.unsynced_names);
        let (mine, rest): (Vec<NameOp>, Vec<NameOp>) =
            ops.into_iter().partition(|op| op.dir() == Some(path));
        fs.unsynced_names = rest;
        for op in mine {
            match op {
                NameOp::Link { path, file } => {
                    fs.durable_names.insert(path, file);
                }
                NameOp::Unlink { path } => {
                    fs.durable_names.remove(&path);
                }
                NameOp::Rename { from, to } => {
                    if let Some(f) = fs.durable_names.remove(&from) {
                        fs.durable_names.insert(to, f);
                    }
                }
            }
        }
        Ok(())
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut fs = self.fs.borrow_mut();
        fs.charge()?;
        Ok(fs.names.contains_key(path) || fs.dirs.contains(path))
    }
}
