//! Fault injection in the real backend, for tests of a failing device through a live node.
//!
//! Compiled only with the `faults` cargo feature (off by default; the node enables it for its
//! test builds only, through a dev-dependency). Without the feature this module, the variable
//! name and every check are absent from the binary.
//!
//! # `ODRADEK_STORAGE_FAULTS`
//! Read once, at the first file the process opens through [`crate::CompioBackend`]. Its value is
//! a list of rules separated by `;`, each `SUBSTRING[,after=BYTES][,errno=N]`:
//! - `SUBSTRING`: the rule covers every file whose path contains it (`doomed-0/` covers the
//!   files of partition 0 of topic `doomed`);
//! - `after=BYTES` (default 0): the covered files, all together, accept that many bytes of data
//!   writes; the write that would go past it writes the bytes up to it and fails;
//! - `errno=N` (default 5, `EIO`): the error every failure returns (28 is `ENOSPC`).
//!
//! Once a rule has failed a write it is *tripped*, like a device that went bad: every later
//! write, truncation (`set_len`) and `fdatasync` of a covered file fails with the same error.
//! Reads keep working. Example: `ODRADEK_STORAGE_FAULTS='doomed-0/,after=65536'`.
//! A malformed value panics at the first open: a test that asks for faults must get them.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The environment variable that holds the rules.
pub const FAULTS_ENV: &str = "ODRADEK_STORAGE_FAULTS";
/// The error a rule returns unless it names another: `EIO`.
const EIO: i32 = 5;

/// One rule: which files, how many bytes they take, and what failing looks like.
#[derive(Debug)]
pub struct FaultRule {
    substring: String,
    after_bytes: u64,
    errno: i32,
    written: AtomicU64,
    tripped: AtomicBool,
}

impl FaultRule {
    fn error(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }

    /// Before a data write of `len` bytes: how many of them may be written (all of them:
    /// `Ok(len)`), or the error to fail with when none may. A write cut short by the budget is
    /// reported as `Ok(n < len)`: the caller writes `n` bytes and then fails with
    /// [`FaultRule::trip`].
    pub fn admit_write(&self, len: u64) -> io::Result<u64> {
        if self.tripped.load(Ordering::Acquire) {
            return Err(self.error());
        }
        let before = self.written.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) <= self.after_bytes {
            return Ok(len);
        }
        Ok(self.after_bytes.saturating_sub(before).min(len))
    }

    /// Marks the device bad and returns the error the failing call reports.
    pub fn trip(&self) -> io::Error {
        if !self.tripped.swap(true, Ordering::AcqRel) {
            tracing::warn!(rule = %self.substring, after_bytes = self.after_bytes, errno = self.errno, "storage fault injection: device fails from now on");
        }
        self.error()
    }

    /// Before a truncation or `fdatasync`: the error once the rule has tripped.
    pub fn check(&self) -> io::Result<()> {
        if self.tripped.load(Ordering::Acquire) { Err(self.error()) } else { Ok(()) }
    }
}

/// Parses the variable's value (see the module docs).
pub fn parse(value: &str) -> Result<Vec<FaultRule>, String> {
    let mut rules = Vec::new();
    for spec in value.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let mut parts = spec.split(',');
        let substring = parts.next().unwrap_or_default().trim();
        if substring.is_empty() || substring.contains('=') {
            return Err(format!("rule `{spec}` must start with a path substring"));
        }
        let (mut after_bytes, mut errno) = (0u64, EIO);
        for part in parts {
            let (key, val) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` in `{spec}` is not KEY=VALUE"))?;
            let bad = |e: std::num::ParseIntError| format!("`{part}` in `{spec}`: {e}");
            match key.trim() {
                "after" => after_bytes = val.trim().parse().map_err(bad)?,
                "errno" => errno = val.trim().parse().map_err(bad)?,
                other => return Err(format!("unknown key `{other}` in `{spec}`")),
            }
        }
        rules.push(FaultRule {
            substring: substring.to_owned(),
            after_bytes,
            errno,
            written: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
        });
    }
    Ok(rules)
}

/// The rules of this process, parsed once from [`FAULTS_ENV`].
fn rules() -> &'static [Arc<FaultRule>] {
    static RULES: OnceLock<Vec<Arc<FaultRule>>> = OnceLock::new();
    RULES.get_or_init(|| {
        let Ok(value) = std::env::var(FAULTS_ENV) else { return Vec::new() };
        let parsed = parse(&value).unwrap_or_else(|e| panic!("{FAULTS_ENV}={value:?}: {e}"));
        tracing::warn!(rules = parsed.len(), value = %value, "storage fault injection is on");
        parsed.into_iter().map(Arc::new).collect()
    })
}

/// The rule covering `path`, if any (the first that matches).
pub fn rule_for(path: &Path) -> Option<Arc<FaultRule>> {
    let path = path.to_string_lossy();
    rules().iter().find(|r| path.contains(r.substring.as_str())).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let rules = parse("doomed-0/,after=100; other,errno=28;").expect("parses");
        assert_eq!(rules.len(), 2);
        assert_eq!(
            (rules[0].substring.as_str(), rules[0].after_bytes, rules[0].errno),
            ("doomed-0/", 100, 5)
        );
        assert_eq!(
            (rules[1].substring.as_str(), rules[1].after_bytes, rules[1].errno),
            ("other", 0, 28)
        );
        for bad in ["after=5", "x,after", "x,after=-1", "x,size=3", ",after=1"] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
        assert!(parse("").expect("empty").is_empty());
    }

    #[test]
    fn a_rule_takes_its_budget_then_fails_everything() {
        let rule = parse("d,after=10").expect("parses").remove(0);
        assert_eq!(rule.admit_write(6).expect("fits"), 6);
        assert_eq!(rule.admit_write(6).expect("part"), 4, "only the budget's rest");
        assert_eq!(rule.trip().raw_os_error(), Some(EIO));
        assert!(rule.admit_write(1).is_err());
        assert!(rule.check().is_err(), "truncation and sync fail once tripped");
    }
}
