//! Start-up checks: each failure is one sentence that says what is wrong and how to fix it.
//! The host checks themselves live in `odradek_tuning`; this module turns a fatal one into a
//! [`StartupError`].

use std::io::Write;
use std::path::Path;

use odradek_tuning::{Ctx, Host, RealSystem};

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

/// The host checks of `odradek tune` (`odradek_tuning`), run once: each warning is logged
/// once, and a fatal finding (io_uring disabled or unusable) stops the node. `root` replaces
/// `/` for /proc, /sys and the mount table (tests).
pub fn host(root: Option<&Path>, data_dir: &Path, shards: usize) -> Result<(), StartupError> {
    let (host, data_dir) = match root {
        Some(root) => (Host::new(root), data_dir.to_owned()),
        None => (Host::real(), odradek_tuning::checks::real_data_dir(data_dir)),
    };
    let ctx = Ctx { host: &host, system: &RealSystem, data_dir: &data_dir, shards };
    odradek_tuning::startup::run_checks(&ctx).map(drop).map_err(|f| {
        let problem = format!("{}: {} (recommended: {})", f.id, f.current, f.recommended);
        StartupError::new(problem, f.fix)
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
    fn this_host_passes_the_fatal_checks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        host(None, tmp.path(), 2).expect("the test machine has io_uring");
    }
}
