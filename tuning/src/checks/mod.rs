//! Host checks. Each is a small unit ([`Check`]) with an id, a test of whether it applies to
//! this host, the check itself, and (where a file write fixes it) the change that fixes it.

mod disk;
mod hardware;
mod kernel;
mod sysctl;

use std::fmt;
use std::path::Path;

use crate::error::HostError;
use crate::host::{Host, System};

pub use disk::{data_device, real_data_dir};
pub(crate) use hardware::mem_total as hardware_mem_total;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The check does not apply to this host (no such device, setting or kernel feature).
    NotApplicable,
    Ok,
    /// Worth knowing; the node runs fine either way.
    Info,
    /// The node runs, but slower or less safely than it could.
    Warning,
    /// The node cannot run.
    Fatal,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::NotApplicable => "n/a",
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Fatal => "fatal",
        })
    }
}

/// One write that fixes a finding: a /proc/sys or /sys file (a host path, looked up under the
/// root) and the value to put there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub from: String,
    pub to: String,
}

impl Change {
    pub fn new(path: impl Into<String>, from: impl Into<String>, to: impl Into<String>) -> Self {
        Self { path: path.into(), from: from.into(), to: to.into() }
    }

    /// The `sysctl` key of a /proc/sys path (`vm.swappiness`), if it is one.
    pub fn sysctl_key(&self) -> Option<String> {
        self.path.strip_prefix("/proc/sys/").map(|k| k.replace('/', "."))
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: &'static str,
    pub current: String,
    pub recommended: String,
    pub severity: Severity,
    /// What to do, for a person; empty when nothing is to be done.
    pub fix: String,
    /// The writes `--apply` makes; empty when no file write fixes it.
    pub changes: Vec<Change>,
}

impl Finding {
    pub fn new(id: &'static str, severity: Severity, current: impl Into<String>) -> Self {
        Self {
            id,
            current: current.into(),
            recommended: String::new(),
            severity,
            fix: String::new(),
            changes: Vec::new(),
        }
    }
    pub fn recommend(mut self, recommended: impl Into<String>) -> Self {
        self.recommended = recommended.into();
        self
    }
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
    pub fn change(mut self, change: Change) -> Self {
        self.changes.push(change);
        self
    }

    /// A check whose input could not be read: say so, and which file, but do not fail.
    pub fn unreadable(id: &'static str, err: &HostError) -> Self {
        Finding::new(id, Severity::Info, "unknown").fix(format!("{err}; check that it is readable"))
    }

    /// Whether something should be done about it.
    pub fn is_problem(&self) -> bool {
        self.severity >= Severity::Info
    }
}

/// What every check may look at.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub host: &'a Host,
    pub system: &'a dyn System,
    /// The node's data directory (a host path; need not exist yet).
    pub data_dir: &'a Path,
    /// Shards the node will run (sizes what it needs of some limits).
    pub shards: usize,
}

/// One host check.
pub trait Check: fmt::Debug {
    /// A stable identifier (`vm.swappiness`, `io_uring`), used in logs and the table.
    fn id(&self) -> &'static str;
    /// `Err(why)` when the check does not apply to this host (no cpufreq on a VM, no block
    /// device behind tmpfs).
    fn is_supported(&self, _ctx: &Ctx<'_>) -> Result<(), String> {
        Ok(())
    }
    fn check(&self, ctx: &Ctx<'_>) -> Finding;
    /// Makes the finding's changes under the root. The default writes each [`Change`]; a
    /// check with no file to write returns no changes.
    fn apply(&self, ctx: &Ctx<'_>, finding: &Finding) -> Vec<Result<Change, HostError>> {
        finding.changes.iter().map(|c| ctx.host.write(&c.path, &c.to).map(|()| c.clone())).collect()
    }
}

/// Every check, in the order the table shows them.
pub fn all() -> Vec<Box<dyn Check>> {
    let mut checks: Vec<Box<dyn Check>> = vec![
        Box::new(kernel::IoUring),
        Box::new(kernel::IoUringOpcodes),
        Box::new(kernel::LockedMemory),
        Box::new(kernel::OpenFiles),
        Box::new(kernel::CpuGovernor),
        Box::new(kernel::TransparentHugePages),
    ];
    checks.extend(sysctl::all().into_iter().map(|c| Box::new(c) as Box<dyn Check>));
    checks.extend([
        Box::new(disk::FileSystem) as Box<dyn Check>,
        Box::new(disk::FreeSpace),
        Box::new(disk::Scheduler),
        Box::new(disk::NoMerges),
        Box::new(kernel::IrqBalance),
        Box::new(kernel::ClockSource),
        Box::new(hardware::MemoryPerCore),
        Box::new(hardware::Numa),
    ]);
    checks
}

/// Runs one check, or says it does not apply.
pub fn run_one(check: &dyn Check, ctx: &Ctx<'_>) -> Finding {
    match check.is_supported(ctx) {
        Ok(()) => check.check(ctx),
        Err(why) => Finding::new(check.id(), Severity::NotApplicable, "n/a").fix(why),
    }
}

/// Runs every check.
pub fn run(checks: &[Box<dyn Check>], ctx: &Ctx<'_>) -> Vec<Finding> {
    checks.iter().map(|c| run_one(c.as_ref(), ctx)).collect()
}

/// Applies the changes of every finding that has some; returns what was written and what
/// failed, in order.
pub fn apply(
    checks: &[Box<dyn Check>],
    ctx: &Ctx<'_>,
    findings: &[Finding],
) -> Vec<Result<Change, HostError>> {
    let mut done = Vec::new();
    for finding in findings.iter().filter(|f| !f.changes.is_empty()) {
        if let Some(check) = checks.iter().find(|c| c.id() == finding.id) {
            done.extend(check.apply(ctx, finding));
        }
    }
    done
}

/// Reads a host file for a check: `Err` carries the finding to report when it is missing
/// (the check does not apply) or unreadable.
pub(crate) fn read_or_finding(
    ctx: &Ctx<'_>,
    id: &'static str,
    path: &str,
) -> Result<String, Box<Finding>> {
    ctx.host.read(path).map_err(|e| Box::new(missing_or_unreadable(id, &e)))
}

pub(crate) fn missing_or_unreadable(id: &'static str, e: &HostError) -> Finding {
    if e.is_missing() {
        Finding::new(id, Severity::NotApplicable, "n/a").fix(format!("{e}: not on this host"))
    } else {
        Finding::unreadable(id, e)
    }
}

/// `1.5 GiB`-style sizes for the table.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The selected value of a sysfs choice list such as `always [madvise] never`.
pub(crate) fn selected(choices: &str) -> Option<&str> {
    let start = choices.find('[')?;
    let end = choices[start..].find(']')? + start;
    Some(&choices[start + 1..end])
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::fake::Fake;
    use super::*;

    /// A tree shaped like a default Linux host: several settings off, one device.
    fn default_host() -> Fake {
        let fake = Fake::new();
        fake.file("/proc/sys/kernel/io_uring_disabled", "0\n");
        fake.file("/proc/sys/kernel/osrelease", "6.18.0\n");
        fake.file("/proc/sys/vm/swappiness", "60\n");
        fake.file("/proc/sys/vm/max_map_count", "65530\n");
        fake.file("/proc/sys/fs/aio-max-nr", "65536\n");
        fake.file("/proc/sys/net/core/somaxconn", "4096\n");
        fake.file("/proc/sys/net/ipv4/tcp_max_syn_backlog", "2048\n");
        fake.file("/proc/sys/net/core/rmem_max", "212992\n");
        fake.file("/proc/sys/net/core/wmem_max", "212992\n");
        fake.file("/proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n");
        fake.file("/proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t4194304\n");
        fake.file("/sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never\n");
        fake.file("/proc/self/mountinfo", "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n");
        fake.link("/sys/dev/block/254:0", "../../devices/virtio1/block/vda");
        fake.file("/sys/devices/virtio1/block/vda/queue/scheduler", "none [mq-deadline]\n");
        fake.file("/sys/devices/virtio1/block/vda/queue/nomerges", "0\n");
        fake.file("/proc/meminfo", "MemTotal: 24681696 kB\n");
        fake.file(CLOCK, "tsc\n");
        fake.dir("/sys/devices/system/node/node0");
        fake
    }

    const CLOCK: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";

    #[test]
    fn each_file_a_check_reads_is_not_applicable_when_missing_and_unknown_when_unreadable() {
        let mut cases: Vec<(&str, String)> = sysctl::all()
            .iter()
            .map(|s| (s.key, format!("/proc/sys/{}", s.key.replace('.', "/"))))
            .collect();
        let queue = "/sys/devices/virtio1/block/vda/queue";
        cases.extend([
            ("transparent_hugepage", "/sys/kernel/mm/transparent_hugepage/enabled".into()),
            ("clocksource", CLOCK.into()),
            ("memory.per_core", "/proc/meminfo".into()),
            ("data_dir.filesystem", "/proc/self/mountinfo".into()),
            ("disk.scheduler", format!("{queue}/scheduler")),
            ("disk.nomerges", format!("{queue}/nomerges")),
            ("numa", "/sys/devices/system/node".into()),
        ]);
        let checks = all();
        let check = |id: &str| checks.iter().find(|c| c.id() == id).expect("a check with this id");
        for (id, path) in &cases {
            let fake = default_host();
            let read = run_one(check(id).as_ref(), &fake.ctx());
            assert!(
                read.severity != Severity::NotApplicable && read.current != "unknown",
                "{read:?}"
            );

            let real = fake.host.path(Path::new(path));
            if real.is_dir() {
                std::fs::remove_dir_all(&real).expect("rm");
            } else {
                std::fs::remove_file(&real).expect("rm");
            }
            let missing = run_one(check(id).as_ref(), &fake.ctx());
            assert_eq!(
                missing.severity,
                Severity::NotApplicable,
                "{id} without {path}: {missing:?}"
            );

            // Unreadable: root reads through any permission, so put the wrong kind of file there.
            if *id == "numa" {
                fake.file(path, "not a directory");
            } else {
                fake.dir(path);
            }
            let unreadable = run_one(check(id).as_ref(), &fake.ctx());
            assert_eq!(unreadable.current, "unknown", "{id} with {path} unreadable");
            assert_eq!(unreadable.severity, Severity::Info, "{id}");
            assert!(
                unreadable.fix.contains(path.as_str()),
                "{id} names the file: {}",
                unreadable.fix
            );
        }
    }

    #[test]
    fn every_check_reports_once_on_a_default_host_and_missing_ones_are_not_applicable() {
        let fake = default_host();
        let checks = all();
        let findings = run(&checks, &fake.ctx());
        assert_eq!(findings.len(), checks.len());
        let ids: Vec<&str> = findings.iter().map(|f| f.id).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "ids are unique: {ids:?}");
        let severity = |id: &str| findings.iter().find(|f| f.id == id).map(|f| f.severity);
        assert_eq!(severity("io_uring"), Some(Severity::Ok));
        assert_eq!(severity("vm.swappiness"), Some(Severity::Warning));
        assert_eq!(severity("cpu.governor"), Some(Severity::NotApplicable), "no cpufreq");
        assert_eq!(severity("numa"), Some(Severity::Ok));
        assert_eq!(severity("rlimit.nofile"), Some(Severity::Ok));
        assert!(findings.iter().all(|f| f.severity != Severity::Fatal));
    }

    #[test]
    fn apply_writes_every_change_under_the_root_and_a_second_run_finds_nothing_to_fix() {
        let fake = default_host();
        let checks = all();
        let before = run(&checks, &fake.ctx());
        let done = apply(&checks, &fake.ctx(), &before);
        let written: Vec<String> =
            done.iter().map(|r| r.as_ref().expect("written").path.clone()).collect();
        assert_eq!(written.len(), before.iter().map(|f| f.changes.len()).sum::<usize>());
        assert!(written.len() >= 9, "{written:?}");
        assert_eq!(fake.text("/proc/sys/vm/swappiness"), "1");
        assert_eq!(fake.text("/proc/sys/net/ipv4/tcp_wmem"), "4096 16384 16777216");
        assert_eq!(fake.text("/sys/kernel/mm/transparent_hugepage/enabled"), "madvise");
        assert_eq!(fake.text("/sys/devices/virtio1/block/vda/queue/nomerges"), "2");

        // A real sysfs file shows the selection in brackets; the fake keeps what was written.
        fake.file("/sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never");
        fake.file("/sys/devices/virtio1/block/vda/queue/scheduler", "[none] mq-deadline");
        let after = run(&checks, &fake.ctx());
        let left: Vec<&str> =
            after.iter().filter(|f| !f.changes.is_empty()).map(|f| f.id).collect();
        assert!(left.is_empty(), "still to fix: {left:?}");
    }

    #[test]
    fn apply_reports_a_file_that_cannot_be_written_and_goes_on() {
        let fake = default_host();
        let checks = all();
        let findings = run(&checks, &fake.ctx());
        // The setting vanishes between check and apply (a directory cannot be opened for writing).
        std::fs::remove_file(fake.host.path(Path::new("/proc/sys/vm/swappiness"))).expect("rm");
        fake.dir("/proc/sys/vm/swappiness");
        let done = apply(&checks, &fake.ctx(), &findings);
        let failed: Vec<String> =
            done.iter().filter_map(|r| r.as_ref().err()).map(ToString::to_string).collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("/proc/sys/vm/swappiness"), "{failed:?}");
        assert_eq!(fake.text("/proc/sys/vm/max_map_count"), "262144", "the others were written");
    }
}
