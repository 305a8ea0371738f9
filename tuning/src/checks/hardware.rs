//! Hardware shape: memory per core and NUMA layout.

use super::{Check, Ctx, Finding, Severity, human_bytes, missing_or_unreadable};
use crate::error::HostError;

/// Memory a shard should have at least (Redpanda asks 2 GiB per core; the node itself runs in
/// far less, but the page cache and fetch caches want room).
pub const MEMORY_PER_CORE_MIN: u64 = 1 << 30;
/// Memory per core recommended.
pub const MEMORY_PER_CORE_RECOMMENDED: u64 = 2 << 30;

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn mem_total(host: &crate::host::Host) -> Result<u64, HostError> {
    let path = "/proc/meminfo";
    let text = host.read(path)?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib.saturating_mul(1024))
        .ok_or_else(|| HostError::Parse { path: path.into(), text: "no MemTotal line".into() })
}

/// CPUs the node will run on: the process's affinity mask (what shards are sized by).
fn cpus(ctx: &Ctx<'_>) -> u64 {
    ctx.system.available_cpus().max(1) as u64
}

/// Enough memory per CPU.
#[derive(Debug)]
pub struct MemoryPerCore;

impl Check for MemoryPerCore {
    fn id(&self) -> &'static str {
        "memory.per_core"
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let total = match mem_total(ctx.host) {
            Ok(t) => t,
            Err(e) => return missing_or_unreadable(self.id(), &e),
        };
        let per_core = total / cpus(ctx);
        let current =
            format!("{} ({} / {} CPUs)", human_bytes(per_core), human_bytes(total), cpus(ctx));
        let finding = Finding::new(self.id(), Severity::Ok, current)
            .recommend(format!(">= {}", human_bytes(MEMORY_PER_CORE_RECOMMENDED)));
        let severity = match per_core {
            p if p >= MEMORY_PER_CORE_RECOMMENDED => return finding,
            p if p >= MEMORY_PER_CORE_MIN => Severity::Info,
            _ => Severity::Warning,
        };
        Finding { severity, ..finding }.fix(
            "little memory per core: autotune runs fewer shards (--smp) so each keeps at least \
             1 GiB; add memory for a shard per core",
        )
    }
}

const NODES: &str = "/sys/devices/system/node";

/// One NUMA node, or a note that shards are pinned without regard to nodes.
#[derive(Debug)]
pub struct Numa;

impl Check for Numa {
    fn id(&self) -> &'static str {
        "numa"
    }

    fn is_supported(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        if !ctx.host.exists(NODES) {
            return Err("kernel without NUMA support".into());
        }
        Ok(())
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let nodes = match ctx.host.list(NODES) {
            Ok(names) => names
                .iter()
                .filter(|n| n.strip_prefix("node").is_some_and(|i| i.parse::<u32>().is_ok()))
                .count(),
            Err(e) => return missing_or_unreadable(self.id(), &e),
        };
        let finding = Finding::new(self.id(), Severity::Ok, format!("{nodes} node(s)"))
            .recommend("1 node, or one odradek per node");
        if nodes <= 1 {
            return finding;
        }
        Finding { severity: Severity::Info, ..finding }.fix(
            "shards are pinned to cores in order, not by node, so a shard's memory may be remote: \
             run one node per NUMA node (numactl --cpunodebind=N --membind=N) with --smp set",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fake::Fake;

    #[test]
    fn memory_per_core_grades_by_cpus() {
        let mut fake = Fake::new();
        fake.file("/proc/meminfo", "MemTotal:       24681696 kB\nMemFree: 1 kB\n");
        let f = MemoryPerCore.check(&fake.ctx());
        assert_eq!(f.severity, Severity::Ok);
        assert!(f.current.starts_with("11.8 GiB"), "{}", f.current);
        fake.system.cpus = 16;
        assert_eq!(MemoryPerCore.check(&fake.ctx()).severity, Severity::Info);
        fake.system.cpus = 64;
        assert_eq!(MemoryPerCore.check(&fake.ctx()).severity, Severity::Warning);
        fake.file("/proc/meminfo", "MemFree: 1 kB\n");
        assert_eq!(MemoryPerCore.check(&fake.ctx()).current, "unknown");
    }

    #[test]
    fn numa_counts_nodes_and_is_not_applicable_without_sysfs_nodes() {
        let fake = Fake::new();
        assert!(Numa.is_supported(&fake.ctx()).is_err());
        fake.dir("/sys/devices/system/node/node0");
        fake.file("/sys/devices/system/node/online", "0\n");
        assert_eq!(Numa.check(&fake.ctx()).severity, Severity::Ok);
        fake.dir("/sys/devices/system/node/node1");
        assert_eq!(Numa.check(&fake.ctx()).severity, Severity::Info);
    }
}
