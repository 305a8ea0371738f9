//! Kernel and process checks: io_uring, resource limits, CPU frequency, huge pages, IRQ
//! balancing, clock source.

use super::{
    Change, Check, Ctx, Finding, Severity, human_bytes, missing_or_unreadable, read_or_finding,
    selected,
};
use crate::host::{Limit, Rlimit};

const IO_URING_DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";

/// io_uring is enabled and a real ring can be created: without it the node cannot run.
#[derive(Debug)]
pub struct IoUring;

impl Check for IoUring {
    fn id(&self) -> &'static str {
        "io_uring"
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let fix_sysctl = "run `sysctl -w kernel.io_uring_disabled=0` as root (and persist it in \
                          /etc/sysctl.d/99-odradek.conf)";
        // 0: everyone; 1: only root or the group in kernel.io_uring_group; 2: nobody.
        let disabled = ctx.host.read(IO_URING_DISABLED).ok();
        let change = |from: &str| Change::new(IO_URING_DISABLED, from, "0");
        if let Some(d) = disabled.as_deref()
            && d == "2"
        {
            return Finding::new(self.id(), Severity::Fatal, "kernel.io_uring_disabled = 2")
                .recommend("kernel.io_uring_disabled = 0")
                .fix(fix_sysctl)
                .change(change(d));
        }
        match ctx.system.io_uring_probe() {
            Ok(_) => {
                let current = disabled.map_or("a ring works".to_owned(), |d| {
                    format!("a ring works (kernel.io_uring_disabled = {d})")
                });
                Finding::new(self.id(), Severity::Ok, current).recommend("a ring works")
            }
            Err(e) => {
                let finding = Finding::new(self.id(), Severity::Fatal, format!("no ring: {e}"))
                    .recommend("a ring works");
                match disabled.as_deref() {
                    Some(d) if d != "0" => finding.fix(fix_sysctl).change(change(d)),
                    _ => finding.fix(
                        "check the container's seccomp profile (io_uring_setup must be allowed) \
                         and, on kernels before 5.12, RLIMIT_MEMLOCK (`ulimit -l`)",
                    ),
                }
            }
        }
    }
}

/// Every opcode the node submits is supported; a missing one runs on compio's blocking thread
/// pool instead (slower, not wrong).
#[derive(Debug)]
pub struct IoUringOpcodes;

impl Check for IoUringOpcodes {
    fn id(&self) -> &'static str {
        "io_uring.opcodes"
    }

    fn is_supported(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        ctx.system.io_uring_probe().map(drop).map_err(|e| format!("no ring to probe: {e}"))
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let probe = match ctx.system.io_uring_probe() {
            Ok(p) => p,
            Err(e) => return Finding::new(self.id(), Severity::NotApplicable, format!("{e}")),
        };
        let missing: Vec<&str> =
            probe.opcodes.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect();
        let all = format!("all {} the node uses", probe.opcodes.len());
        if missing.is_empty() {
            return Finding::new(self.id(), Severity::Ok, all.clone()).recommend(all);
        }
        Finding::new(self.id(), Severity::Warning, format!("missing {}", missing.join(", ")))
            .recommend(all)
            .fix(
                "upgrade the kernel (Linux 6.9 has every one); until then these operations run \
                  on a blocking thread pool",
            )
    }
}

/// Kernels before this charge io_uring ring memory to RLIMIT_MEMLOCK.
const RING_MEMLOCK_UNTIL: (u32, u32) = (5, 12);
/// Locked memory one compio ring of 1024 entries takes (SQEs, CQEs, rings), rounded up.
const RING_BYTES: u64 = 128 * 1024;

/// The locked-memory limit covers what the node locks. It registers no fixed buffers; only on
/// kernels before 5.12 do its rings (one per shard, plus the main thread's) count.
#[derive(Debug)]
pub struct LockedMemory;

/// `(major, minor)` of `/proc/sys/kernel/osrelease` (`6.18.0-foo`).
fn kernel_version(ctx: &Ctx<'_>) -> Option<(u32, u32)> {
    let release = ctx.host.read("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn limit_text(limit: Option<u64>, bytes: bool) -> String {
    match limit {
        None => "unlimited".to_owned(),
        Some(v) if bytes => human_bytes(v),
        Some(v) => v.to_string(),
    }
}

impl Check for LockedMemory {
    fn id(&self) -> &'static str {
        "rlimit.memlock"
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let Ok(Rlimit { soft, .. }) = ctx.system.rlimit(Limit::LockedMemory) else {
            return Finding::new(self.id(), Severity::Info, "unknown").fix("getrlimit failed");
        };
        let charged = kernel_version(ctx).is_none_or(|v| v < RING_MEMLOCK_UNTIL);
        let need = if charged { RING_BYTES * (ctx.shards as u64 + 1) } else { 0 };
        let recommended = if charged {
            format!(">= {} ({} rings)", human_bytes(need), ctx.shards + 1)
        } else {
            "any (no registered buffers; Linux >= 5.12)".to_owned()
        };
        let finding =
            Finding::new(self.id(), Severity::Ok, limit_text(soft, true)).recommend(recommended);
        if soft.is_none_or(|s| s >= need) {
            return finding;
        }
        Finding { severity: Severity::Warning, ..finding }.fix(format!(
            "this kernel charges io_uring rings to locked memory ({} per shard): set \
             LimitMEMLOCK=infinity in the systemd unit, or `memlock` in \
             /etc/security/limits.conf",
            human_bytes(RING_BYTES)
        ))
    }
}

/// Open files the node may need: every connection and every segment and index file.
pub const NOFILE_RECOMMENDED: u64 = 65_536;

/// The open-files limit is high enough for many connections and segments.
#[derive(Debug)]
pub struct OpenFiles;

impl Check for OpenFiles {
    fn id(&self) -> &'static str {
        "rlimit.nofile"
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let Rlimit { soft, hard } = match ctx.system.rlimit(Limit::OpenFiles) {
            Ok(r) => r,
            Err(e) => {
                return Finding::new(self.id(), Severity::Info, "unknown")
                    .fix(format!("getrlimit(RLIMIT_NOFILE) failed: {e}"));
            }
        };
        let finding = Finding::new(
            self.id(),
            Severity::Ok,
            format!("{} (hard {})", limit_text(soft, false), limit_text(hard, false)),
        )
        .recommend(format!(">= {NOFILE_RECOMMENDED}"));
        if soft.is_none_or(|s| s >= NOFILE_RECOMMENDED) {
            return finding;
        }
        // A process limit cannot be written to a file; say where to set it for good.
        Finding { severity: Severity::Warning, ..finding }.fix(
            "each connection, segment and index holds a descriptor: set LimitNOFILE=1048576 in \
             the systemd unit, or `nofile 1048576` in /etc/security/limits.conf (`ulimit -n` \
             lasts one shell)",
        )
    }
}

const CPU_DIR: &str = "/sys/devices/system/cpu";

/// The CPU frequency governor is `performance` on every CPU.
#[derive(Debug)]
pub struct CpuGovernor;

impl CpuGovernor {
    fn governor_paths(ctx: &Ctx<'_>) -> Vec<String> {
        let cpus = ctx.host.list(CPU_DIR).unwrap_or_default();
        cpus.iter()
            .filter(|n| n.strip_prefix("cpu").is_some_and(|i| i.parse::<u32>().is_ok()))
            .map(|n| format!("{CPU_DIR}/{n}/cpufreq/scaling_governor"))
            .filter(|p| ctx.host.exists(p))
            .collect()
    }
}

impl Check for CpuGovernor {
    fn id(&self) -> &'static str {
        "cpu.governor"
    }

    fn is_supported(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        if Self::governor_paths(ctx).is_empty() {
            return Err("no cpufreq on this host (typical of VMs): the hypervisor decides".into());
        }
        Ok(())
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let mut finding =
            Finding::new(self.id(), Severity::Ok, "performance").recommend("performance");
        let mut seen = Vec::new();
        for path in Self::governor_paths(ctx) {
            let governor = match ctx.host.read(&path) {
                Ok(g) => g,
                Err(e) => return missing_or_unreadable(self.id(), &e),
            };
            if governor != "performance" {
                finding.changes.push(Change::new(path, governor.clone(), "performance"));
            }
            if !seen.contains(&governor) {
                seen.push(governor);
            }
        }
        finding.current = seen.join(", ");
        if finding.changes.is_empty() {
            return finding;
        }
        Finding { severity: Severity::Warning, ..finding }.fix(
            "frequency scaling adds latency when a shard wakes: `cpupower frequency-set -g \
             performance`",
        )
    }
}

const THP: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Transparent huge pages are `madvise` or `never`: with `always`, khugepaged and compaction
/// stall the shard that faults.
#[derive(Debug)]
pub struct TransparentHugePages;

impl Check for TransparentHugePages {
    fn id(&self) -> &'static str {
        "transparent_hugepage"
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let text = match read_or_finding(ctx, self.id(), THP) {
            Ok(t) => t,
            Err(f) => return *f,
        };
        let Some(mode) = selected(&text) else {
            let err = crate::error::HostError::Parse { path: THP.into(), text };
            return Finding::unreadable(self.id(), &err);
        };
        let finding = Finding::new(self.id(), Severity::Ok, mode).recommend("madvise or never");
        if mode != "always" {
            return finding;
        }
        Finding { severity: Severity::Info, ..finding }
            .fix("with `always`, page compaction can stall a shard: `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled`")
            .change(Change::new(THP, mode, "madvise"))
    }
}

/// irqbalance moves device interrupts onto any core, including shard cores.
#[derive(Debug)]
pub struct IrqBalance;

impl IrqBalance {
    /// Whether a process named `irqbalance` runs (a scan of /proc/<pid>/comm, bounded).
    fn running(ctx: &Ctx<'_>) -> Result<bool, crate::error::HostError> {
        let pids = ctx.host.list("/proc")?;
        Ok(pids.iter().filter(|p| p.bytes().all(|b| b.is_ascii_digit())).any(|pid| {
            ctx.host.read(&format!("/proc/{pid}/comm")).is_ok_and(|c| c == "irqbalance")
        }))
    }
}

impl Check for IrqBalance {
    fn id(&self) -> &'static str {
        "irq.balance"
    }

    fn is_supported(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        if !ctx.host.exists("/proc/irq") {
            return Err("no /proc/irq".into());
        }
        if ctx.system.available_cpus() < 2 {
            return Err("one CPU: interrupts have nowhere else to go".into());
        }
        Ok(())
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let running = match Self::running(ctx) {
            Ok(r) => r,
            Err(e) => return Finding::unreadable(self.id(), &e),
        };
        let recommended = "device IRQs off the shard cores";
        if !running {
            return Finding::new(self.id(), Severity::Ok, "irqbalance not running")
                .recommend(recommended);
        }
        Finding::new(self.id(), Severity::Info, "irqbalance running").recommend(recommended).fix(
            "irqbalance may move NIC and disk interrupts onto shard cores; with many cores, \
                 keep them on a few (IRQBALANCE_BANNED_CPULIST, or stop irqbalance and set \
                 /proc/irq/*/smp_affinity)",
        )
    }
}

const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0";

/// Time is read from a fast clock source (`tsc`, `kvm-clock`, `arch_sys_counter`): the node
/// reads the clock on every request.
#[derive(Debug)]
pub struct ClockSource;

impl Check for ClockSource {
    fn id(&self) -> &'static str {
        "clocksource"
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let current_path = format!("{CLOCKSOURCE}/current_clocksource");
        let current = match read_or_finding(ctx, self.id(), &current_path) {
            Ok(t) => t,
            Err(f) => return *f,
        };
        let fast = ["tsc", "kvm-clock", "arch_sys_counter", "hyperv_clocksource_tsc_page"];
        let finding = Finding::new(self.id(), Severity::Ok, current.clone())
            .recommend("tsc (or kvm-clock on KVM)");
        if fast.contains(&current.as_str()) {
            return finding;
        }
        let available = ctx.host.read(&format!("{CLOCKSOURCE}/available_clocksource"));
        let finding = Finding { severity: Severity::Warning, ..finding };
        if available.is_ok_and(|a| a.split_whitespace().any(|s| s == "tsc")) {
            return finding
                .fix("a slow clock source makes every timestamp a system call: switch to tsc")
                .change(Change::new(current_path, current, "tsc"));
        }
        finding
            .fix("a slow clock source makes every timestamp a system call; this host offers no tsc")
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;
    use crate::checks::fake::Fake;
    use crate::host::RingProbe;

    #[test]
    fn io_uring_disabled_is_fatal_with_the_sysctl_as_fix() {
        let fake = Fake::new();
        fake.file(IO_URING_DISABLED, "2\n");
        let f = IoUring.check(&fake.ctx());
        assert_eq!(f.severity, Severity::Fatal);
        assert!(f.fix.contains("sysctl -w kernel.io_uring_disabled=0"), "{}", f.fix);
        assert_eq!(f.changes, vec![Change::new(IO_URING_DISABLED, "2", "0")]);

        fake.file(IO_URING_DISABLED, "0\n");
        assert_eq!(IoUring.check(&fake.ctx()).severity, Severity::Ok);
    }

    #[test]
    fn a_failing_probe_ring_is_fatal_even_with_the_sysctl_missing() {
        let mut fake = Fake::new();
        fake.system.probe = Err(ErrorKind::PermissionDenied);
        let f = IoUring.check(&fake.ctx());
        assert_eq!(f.severity, Severity::Fatal);
        assert!(f.fix.contains("seccomp"), "{}", f.fix);
        assert!(f.changes.is_empty(), "nothing to write when the sysctl is not the cause");
        assert_eq!(IoUringOpcodes.is_supported(&fake.ctx()).map_err(|_| ()), Err(()));
    }

    #[test]
    fn missing_opcodes_are_a_warning_naming_them() {
        let mut fake = Fake::new();
        fake.system.probe = Ok(RingProbe { opcodes: vec![("READ", true), ("SPLICE", false)] });
        let f = IoUringOpcodes.check(&fake.ctx());
        assert_eq!((f.severity, f.current.as_str()), (Severity::Warning, "missing SPLICE"));
    }

    #[test]
    fn memlock_matters_only_on_kernels_that_charge_rings_to_it() {
        let mut fake = Fake::new();
        fake.system.memlock = Rlimit { soft: Some(64 * 1024), hard: Some(64 * 1024) };
        fake.file("/proc/sys/kernel/osrelease", "6.18.0\n");
        assert_eq!(LockedMemory.check(&fake.ctx()).severity, Severity::Ok);
        fake.file("/proc/sys/kernel/osrelease", "5.10.0-27-amd64\n");
        let f = LockedMemory.check(&fake.ctx());
        assert_eq!(
            (f.severity, f.recommended.as_str()),
            (Severity::Warning, ">= 384 KiB (3 rings)")
        );
    }

    #[test]
    fn a_low_open_files_limit_is_a_warning_without_a_file_change() {
        let mut fake = Fake::new();
        fake.system.nofile = Ok(Rlimit { soft: Some(1024), hard: Some(4096) });
        let f = OpenFiles.check(&fake.ctx());
        assert_eq!((f.severity, f.current.as_str()), (Severity::Warning, "1024 (hard 4096)"));
        assert!(f.fix.contains("LimitNOFILE") && f.changes.is_empty(), "{f:?}");
        fake.system.nofile = Err(ErrorKind::Other);
        assert_eq!(OpenFiles.check(&fake.ctx()).current, "unknown");
    }

    #[test]
    fn governor_is_not_applicable_without_cpufreq_and_fixed_per_cpu_with_it() {
        let fake = Fake::new();
        fake.dir("/sys/devices/system/cpu/cpu0");
        assert!(CpuGovernor.is_supported(&fake.ctx()).is_err());
        fake.file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n");
        fake.file("/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "powersave\n");
        assert!(CpuGovernor.is_supported(&fake.ctx()).is_ok());
        let f = CpuGovernor.check(&fake.ctx());
        assert_eq!((f.severity, f.current.as_str()), (Severity::Warning, "performance, powersave"));
        assert_eq!(f.changes.len(), 1);
        assert!(f.changes[0].path.ends_with("cpu1/cpufreq/scaling_governor"));
    }

    #[test]
    fn thp_always_is_flagged_and_garbage_is_unknown() {
        let fake = Fake::new();
        fake.file(THP, "[always] madvise never\n");
        let f = TransparentHugePages.check(&fake.ctx());
        assert_eq!((f.severity, f.changes.len()), (Severity::Info, 1));
        fake.file(THP, "always madvise never\n");
        assert_eq!(TransparentHugePages.check(&fake.ctx()).current, "unknown");
        fake.file(THP, "always [madvise] never\n");
        assert_eq!(TransparentHugePages.check(&fake.ctx()).severity, Severity::Ok);
    }

    #[test]
    fn irqbalance_is_found_by_its_process_name() {
        let fake = Fake::new();
        fake.dir("/proc/irq");
        fake.file("/proc/1/comm", "init\n");
        assert_eq!(IrqBalance.check(&fake.ctx()).severity, Severity::Ok);
        fake.file("/proc/812/comm", "irqbalance\n");
        assert_eq!(IrqBalance.check(&fake.ctx()).severity, Severity::Info);
        let one_cpu = {
            let mut f = Fake::new();
            f.system.cpus = 1;
            f.dir("/proc/irq");
            f
        };
        assert!(IrqBalance.is_supported(&one_cpu.ctx()).is_err());
    }

    #[test]
    fn a_slow_clocksource_is_switched_to_tsc_when_offered() {
        let fake = Fake::new();
        let current = format!("{CLOCKSOURCE}/current_clocksource");
        fake.file(&current, "kvm-clock\n");
        assert_eq!(ClockSource.check(&fake.ctx()).severity, Severity::Ok);
        fake.file(&current, "hpet\n");
        fake.file(&format!("{CLOCKSOURCE}/available_clocksource"), "hpet acpi_pm\n");
        let f = ClockSource.check(&fake.ctx());
        assert_eq!((f.severity, f.changes.len()), (Severity::Warning, 0));
        fake.file(&format!("{CLOCKSOURCE}/available_clocksource"), "tsc hpet acpi_pm\n");
        assert_eq!(ClockSource.check(&fake.ctx()).changes[0].to, "tsc");
    }
}
