//! Errors of the tuning crate, one enum per operation.

use std::path::PathBuf;

/// Reading or writing a host file under the root.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds `{text}`, not what was expected")]
    Parse { path: String, text: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{path} leads outside the root, to {}", target.display())]
    OutsideRoot { path: String, target: PathBuf },
}

impl HostError {
    /// The file is simply not there (a kernel without the setting, a VM without the device):
    /// the check does not apply, as opposed to a file that is there but cannot be read.
    pub fn is_missing(&self) -> bool {
        matches!(self, HostError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Writing a fix script.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the script {}: {source}", path.display())]
pub struct ScriptError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Measuring the data device or keeping its result.
#[derive(Debug, thiserror::Error)]
pub enum IoTuneError {
    #[error("{what} on {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} is not a valid iotune result: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("{} was written by iotune format {found}; this node reads format {expected}", path.display())]
    Version { path: PathBuf, found: u32, expected: u32 },
    #[error("the measurement took no samples in {phase}; give it a longer --duration")]
    NoSamples { phase: &'static str },
}

impl IoTuneError {
    pub(crate) fn io<'a>(
        what: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| IoTuneError::Io { what, path: path.to_owned(), source }
    }
}
