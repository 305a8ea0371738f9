//! A fake host for tests: a /proc and /sys tree in a temporary directory, and a [`System`]
//! whose limits, probe and free space the test sets.

use std::io;
use std::path::{Path, PathBuf};

use super::Ctx;
use crate::host::{Host, Limit, RingProbe, Rlimit, Space, System};

#[derive(Debug)]
pub struct FakeSystem {
    pub nofile: Result<Rlimit, io::ErrorKind>,
    pub memlock: Rlimit,
    pub probe: Result<RingProbe, io::ErrorKind>,
    pub space: Result<Space, io::ErrorKind>,
    pub cpus: usize,
}

impl Default for FakeSystem {
    fn default() -> Self {
        Self {
            nofile: Ok(Rlimit { soft: Some(1_048_576), hard: Some(1_048_576) }),
            memlock: Rlimit { soft: Some(8 << 20), hard: Some(8 << 20) },
            probe: Ok(RingProbe {
                opcodes: crate::probe::OPCODES.iter().map(|&(n, _)| (n, true)).collect(),
            }),
            space: Ok(Space { free_bytes: 100 << 30, total_bytes: 200 << 30 }),
            cpus: 2,
        }
    }
}

impl System for FakeSystem {
    fn rlimit(&self, which: Limit) -> io::Result<Rlimit> {
        match which {
            Limit::OpenFiles => self.nofile.map_err(io::Error::from),
            Limit::LockedMemory => Ok(self.memlock),
        }
    }
    fn io_uring_probe(&self) -> io::Result<RingProbe> {
        self.probe.clone().map_err(io::Error::from)
    }
    fn space(&self, _path: &Path) -> io::Result<Space> {
        self.space.map_err(io::Error::from)
    }
    fn available_cpus(&self) -> usize {
        self.cpus
    }
}

/// A fake tree plus a fake system; `ctx()` hands both to a check.
#[derive(Debug)]
pub struct Fake {
    _dir: tempfile::TempDir,
    pub host: Host,
    pub system: FakeSystem,
    pub data_dir: PathBuf,
}

impl Fake {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::new(dir.path());
        Self {
            _dir: dir,
            host,
            system: FakeSystem::default(),
            data_dir: PathBuf::from("/var/lib/odradek"),
        }
    }

    fn real(&self, path: &str) -> PathBuf {
        self.host.path(Path::new(path))
    }

    /// Writes a file (making its directories).
    pub fn file(&self, path: &str, text: &str) {
        let p = self.real(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write fake file");
    }

    /// A directory where a file is expected: reading it fails as an unreadable file would
    /// (permissions do not stop root).
    pub fn dir(&self, path: &str) {
        std::fs::create_dir_all(self.real(path)).expect("mkdir");
    }

    /// A symlink at `path` pointing to `target` (relative, as sysfs links are).
    pub fn link(&self, path: &str, target: &str) {
        let p = self.real(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, p).expect("symlink");
    }

    /// The file's text as the fake tree holds it.
    pub fn text(&self, path: &str) -> String {
        std::fs::read_to_string(self.real(path)).expect("read fake file")
    }

    pub fn ctx(&self) -> Ctx<'_> {
        Ctx { host: &self.host, system: &self.system, data_dir: &self.data_dir, shards: 2 }
    }
}
