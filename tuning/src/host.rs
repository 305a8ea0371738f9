//! What the checks read and write: files under a root directory (`/` on a real host, a fake
//! tree in tests), and the few facts no file holds ([`System`]: resource limits, a real
//! io_uring probe, free space, the CPUs this process may run on).

use std::io;
use std::path::{Path, PathBuf};

use crate::error::HostError;

/// Largest file the checks read (every /proc and /sys file they need is far smaller).
pub const READ_BYTES_MAX: u64 = 256 * 1024;
/// Largest number of directory entries a check looks at (e.g. `/proc/<pid>` when looking for
/// irqbalance, `cpu*` directories).
pub const DIR_ENTRIES_MAX: usize = 65_536;

/// The host's files, seen from `root`. Every path a check names is absolute (`/proc/...`) and
/// is looked up under the root, so a test can hand a fake tree.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The real host.
    pub fn real() -> Self {
        Self::new("/")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` (absolute, as on a real host) under the root.
    pub fn path(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// The file's text, trimmed; at most [`READ_BYTES_MAX`] bytes are read.
    pub fn read(&self, path: &str) -> Result<String, HostError> {
        use std::io::Read;
        let full = self.path(Path::new(path));
        let err = |source: io::Error| HostError::Read { path: path.to_owned(), source };
        let file = std::fs::File::open(&full).map_err(err)?;
        let mut text = String::new();
        file.take(READ_BYTES_MAX).read_to_string(&mut text).map_err(err)?;
        Ok(text.trim().to_owned())
    }

    /// Whether the path exists under the root.
    pub fn exists(&self, path: &str) -> bool {
        self.path(Path::new(path)).exists()
    }

    /// The names in a directory, sorted, at most [`DIR_ENTRIES_MAX`] of them.
    pub fn list(&self, path: &str) -> Result<Vec<String>, HostError> {
        let err = |source: io::Error| HostError::Read { path: path.to_owned(), source };
        let mut names = Vec::new();
        for entry in
            std::fs::read_dir(self.path(Path::new(path))).map_err(err)?.take(DIR_ENTRIES_MAX)
        {
            names.push(entry.map_err(err)?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// The directory a path leads to once symlinks are followed (sysfs links block devices
    /// this way), as a host path (relative to the root again).
    pub fn resolve(&self, path: &str) -> Result<String, HostError> {
        let full = std::fs::canonicalize(self.path(Path::new(path)))
            .map_err(|source| HostError::Read { path: path.to_owned(), source })?;
        let root = std::fs::canonicalize(&self.root)
            .map_err(|source| HostError::Read { path: "/".to_owned(), source })?;
        let inside = full
            .strip_prefix(&root)
            .map_err(|_| HostError::OutsideRoot { path: path.to_owned(), target: full.clone() })?;
        Ok(format!("/{}", inside.display()))
    }

    /// Writes `value` to the file (a /proc/sys or /sys setting), which must exist.
    pub fn write(&self, path: &str, value: &str) -> Result<(), HostError> {
        use std::io::Write;
        let err = |source: io::Error| HostError::Write { path: path.to_owned(), source };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path(Path::new(path)))
            .map_err(err)?;
        file.write_all(value.as_bytes()).map_err(err)
    }
}

/// A resource limit; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The resource limits the checks look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `RLIMIT_NOFILE`.
    OpenFiles,
    /// `RLIMIT_MEMLOCK`.
    LockedMemory,
}

/// Space on the data directory's file system, for this user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// What a real io_uring probe found: per opcode the node needs, whether the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingProbe {
    pub opcodes: Vec<(&'static str, bool)>,
}

/// Facts about the running process and host that no file under the root holds. Tests drive
/// the checks with a fake; [`RealSystem`] asks the kernel.
pub trait System: std::fmt::Debug {
    fn rlimit(&self, which: Limit) -> io::Result<Rlimit>;
    /// Creates a real ring and asks it (`IORING_REGISTER_PROBE`) which of
    /// [`crate::probe::OPCODES`] it supports.
    fn io_uring_probe(&self) -> io::Result<RingProbe>;
    /// Free and total space of the file system holding `path` (`statvfs`).
    fn space(&self, path: &Path) -> io::Result<Space>;
    /// CPUs this process may run on (its affinity mask).
    fn available_cpus(&self) -> usize;
}

/// The running process on the real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealSystem;

impl System for RealSystem {
    fn rlimit(&self, which: Limit) -> io::Result<Rlimit> {
        use rustix::process::{Resource, getrlimit};
        let r = getrlimit(match which {
            Limit::OpenFiles => Resource::Nofile,
            Limit::LockedMemory => Resource::Memlock,
        });
        Ok(Rlimit { soft: r.current, hard: r.maximum })
    }

    fn io_uring_probe(&self) -> io::Result<RingProbe> {
        crate::probe::probe_ring()
    }

    fn space(&self, path: &Path) -> io::Result<Space> {
        let st = rustix::fs::statvfs(path)?;
        Ok(Space {
            free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
            total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        })
    }

    fn available_cpus(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
