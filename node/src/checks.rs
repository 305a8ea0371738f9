//! Start-up checks: each failure is one sentence that says what is wrong and how to fix it.

use std::io::Write;
use std::path::Path;

/// A problem that stops the node from starting.
#[derive(Debug, thiserror::Error)]
#[error("{problem}. Fix: {fix}")]
pub struct StartupError {
    pub problem: String,
    pub fix: String,
}

impl StartupError {
    pub fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { problem: problem.into(), fix: fix.into() }
    }
}

/// The data directory exists (or can be made) and takes a durable write.
pub fn data_dir_writable(dir: &Path) -> Result<(), StartupError> {
    let fix = "pass --data-dir with a directory this user can write, or fix its permissions";
    std::fs::create_dir_all(dir).map_err(|e| {
        StartupError::new(format!("cannot create data dir {}: {e}", dir.display()), fix)
    })?;
    let probe = dir.join(".odradek-write-probe");
    let written = std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(b"probe").and_then(|()| f.sync_all()));
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| {
        StartupError::new(format!("data dir {} is not writable: {e}", dir.display()), fix)
    })
}

/// io_uring is enabled for this process and a ring can be created.
pub fn io_uring_available() -> Result<(), StartupError> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        && v.trim() == "2"
    {
        return Err(StartupError::new(
            "io_uring is disabled on this host (kernel.io_uring_disabled = 2)",
            "run `sysctl -w kernel.io_uring_disabled=0` as root",
        ));
    }
    compio::runtime::Runtime::new().map(drop).map_err(|e| {
        StartupError::new(
            format!("cannot create an io_uring instance: {e}"),
            "check kernel.io_uring_disabled, the container's seccomp profile, and \
             RLIMIT_MEMLOCK (`ulimit -l`) on kernels before 5.12",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_dir_passes_and_a_file_in_the_way_fails_with_a_fix() {
        let tmp = tempfile::tempdir().expect("tempdir");
        data_dir_writable(&tmp.path().join("a/b")).expect("creatable");
        let blocker = tmp.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let err = data_dir_writable(&blocker.join("sub")).expect_err("a file is in the way");
        assert!(err.to_string().contains("Fix: pass --data-dir"), "{err}");
    }

    #[test]
    fn io_uring_works_on_this_host() {
        io_uring_available().expect("the test machine has io_uring");
    }
}
