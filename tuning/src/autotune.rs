//! Autotune: the node's defaults derived from the hardware and, when present, `iotune.json`.
//!
//! Knobs the node applies (unless a flag or the config file sets them): shard count
//! (`smp`), memory per shard for recently appended batches (`fetch_cache_bytes`), and whether
//! logs write with `O_DIRECT` (`direct_writes`). Advisory figures, logged but not applied
//! because the node has no such knob: the group-commit window, the write batch size and the
//! I/O queue depth.

use crate::checks::human_bytes;
use crate::host::{Host, System};
use crate::iotune::IoTune;

/// Memory a shard gets at least; with less per CPU, autotune runs fewer shards.
pub const SHARD_MEMORY_MIN: u64 = 1 << 30;
/// Share of RAM given to the shards' recent-batch caches, all shards together. The cache only
/// serves consumers tailing the last moments of writes, so it needs little: 1/256 keeps the
/// node's RSS under 200 MiB on this project's 24 GiB test machine (1/128 did not).
pub const FETCH_CACHE_RAM_DIVISOR: u64 = 256;
/// Bounds of the per-shard recent-batch cache autotune picks.
pub const FETCH_CACHE_BYTES_MIN: u64 = 16 << 20;
pub const FETCH_CACHE_BYTES_MAX: u64 = 128 << 20;
/// The node's recent-batch cache per shard when memory size is unknown (its built-in default).
pub const FETCH_CACHE_BYTES_DEFAULT: u64 = 32 << 20;
/// The io_uring submission queue compio gives each shard (not configurable by the node).
pub const IO_QUEUE_DEPTH: u64 = 1024;
/// Largest write batch the log queues per partition (`storage::log::PENDING_BYTES_MAX`).
const WRITE_BATCH_BYTES_MAX: u64 = 64 << 20;

/// The hardware autotune looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    /// CPUs this process may run on.
    pub cpus: usize,
    /// `MemTotal`, when /proc/meminfo is readable.
    pub mem_total_bytes: Option<u64>,
}

impl HostFacts {
    pub fn detect(host: &Host, system: &dyn System) -> Self {
        Self {
            cpus: system.available_cpus().max(1),
            mem_total_bytes: crate::checks::hardware_mem_total(host).ok(),
        }
    }
}

/// One derived value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<T> {
    pub value: T,
    pub reason: String,
}

fn decide<T>(value: T, reason: impl Into<String>) -> Decision<T> {
    Decision { value, reason: reason.into() }
}

/// Everything autotune decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autotune {
    pub smp: Decision<usize>,
    pub fetch_cache_bytes: Decision<u64>,
    pub direct_writes: Decision<bool>,
    /// Advisory: appends arriving within this long share one fdatasync.
    pub group_commit_window_us: Option<Decision<u64>>,
    /// Advisory: bytes worth writing per fdatasync.
    pub write_batch_bytes: Option<Decision<u64>>,
    /// Advisory: the ring size each shard has.
    pub io_queue_depth: Decision<u64>,
}

/// Derives the node's defaults from the host and, if given, the iotune result. `smp` is the
/// shard count when configured: memory per shard is then sized for it.
pub fn derive(facts: HostFacts, io: Option<&IoTune>, smp: Option<usize>) -> Autotune {
    let derived = derive_smp(facts);
    let shards = smp.unwrap_or(derived.value).max(1);
    let fetch_cache_bytes = match facts.mem_total_bytes {
        Some(mem) => {
            let per_shard = (mem / FETCH_CACHE_RAM_DIVISOR / shards as u64)
                .clamp(FETCH_CACHE_BYTES_MIN, FETCH_CACHE_BYTES_MAX);
            decide(
                per_shard,
                format!(
                    "1/{FETCH_CACHE_RAM_DIVISOR} of {} RAM over {} shard(s), within {}..{}",
                    human_bytes(mem),
                    shards,
                    human_bytes(FETCH_CACHE_BYTES_MIN),
                    human_bytes(FETCH_CACHE_BYTES_MAX)
                ),
            )
        }
        None => decide(FETCH_CACHE_BYTES_DEFAULT, "memory size unknown: the built-in default"),
    };
    Autotune {
        smp: derived,
        fetch_cache_bytes,
        direct_writes: derive_direct(io),
        group_commit_window_us: io.map(|io| {
            decide(
                io.fdatasync_p50_us,
                "fdatasync p50: appends that arrive while a sync runs share the next one",
            )
        }),
        write_batch_bytes: io.map(derive_batch),
        io_queue_depth: decide(IO_QUEUE_DEPTH, "compio's ring size per shard"),
    }
}

fn derive_smp(facts: HostFacts) -> Decision<usize> {
    let cpus = facts.cpus.max(1);
    let Some(mem) = facts.mem_total_bytes else {
        return decide(cpus, format!("one per CPU ({cpus}); memory size unknown"));
    };
    let by_memory = (mem / SHARD_MEMORY_MIN).max(1) as usize;
    if by_memory < cpus {
        return decide(
            by_memory,
            format!(
                "{} RAM gives {by_memory} shard(s) at least {} each, fewer than the {cpus} CPUs",
                human_bytes(mem),
                human_bytes(SHARD_MEMORY_MIN)
            ),
        );
    }
    decide(cpus, format!("one per CPU ({cpus}); {} RAM", human_bytes(mem)))
}

fn derive_direct(io: Option<&IoTune>) -> Decision<bool> {
    // Through the page cache by default, whatever the device measured: an acks=1 reply then
    // waits for the copy into the cache, never for the device, whose hiccups (this project's
    // virtio disk holds some small writes for 20-500 ms) would otherwise reach acks=1 tails;
    // acks=all still waits for one group-committed fdatasync either way. `direct_writes = true`
    // remains for hosts that want the page cache left to readers.
    let Some(io) = io else {
        return decide(
            false,
            "the default: page cache, so an acks=1 reply never waits for the device",
        );
    };
    let buffered = human_bytes(io.seq_write_buffered_bytes_per_s);
    match io.seq_write_direct_bytes_per_s {
        None => decide(false, "the data dir's file system has no O_DIRECT"),
        Some(direct) => decide(
            false,
            format!(
                "page cache (buffered {buffered}/s, O_DIRECT {}/s): an acks=1 reply never waits for the device",
                human_bytes(direct)
            ),
        ),
    }
}

/// What the disk writes in the time of one fdatasync: a batch smaller than that leaves the
/// disk idle while it syncs.
fn derive_batch(io: &IoTune) -> Decision<u64> {
    let bw = io.seq_write_direct_bytes_per_s.unwrap_or(io.seq_write_buffered_bytes_per_s);
    let bytes = (bw.saturating_mul(io.fdatasync_p50_us) / 1_000_000)
        .div_ceil(4096)
        .saturating_mul(4096)
        .clamp(64 * 1024, WRITE_BATCH_BYTES_MAX);
    decide(bytes, format!("{}/s × fdatasync p50 {} µs", human_bytes(bw), io.fdatasync_p50_us))
}

/// What became of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The node runs with it.
    Applied,
    /// A flag or the config file set the knob to something else.
    Overridden,
    /// The node has no such knob; the figure is for the operator.
    Advisory,
}

/// One decision, ready to print or log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub knob: &'static str,
    pub value: String,
    pub used: Use,
    pub reason: String,
}

/// The values the node actually runs with, to tell applied decisions from overridden ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InUse {
    pub smp: usize,
    pub fetch_cache_bytes: u64,
    pub direct_writes: bool,
}

impl Autotune {
    /// The decisions, one line each; with `in_use`, those a flag or file overrode say so.
    pub fn lines(&self, in_use: Option<&InUse>) -> Vec<Line> {
        let used = |overridden: Option<bool>| match overridden {
            Some(true) => Use::Overridden,
            _ => Use::Applied,
        };
        let line =
            |knob, value, used, reason: &String| Line { knob, value, used, reason: reason.clone() };
        let mut out = vec![
            line(
                "smp",
                self.smp.value.to_string(),
                used(in_use.map(|u| u.smp != self.smp.value)),
                &self.smp.reason,
            ),
            line(
                "fetch_cache_bytes",
                human_bytes(self.fetch_cache_bytes.value),
                used(in_use.map(|u| u.fetch_cache_bytes != self.fetch_cache_bytes.value)),
                &self.fetch_cache_bytes.reason,
            ),
            line(
                "direct_writes",
                self.direct_writes.value.to_string(),
                used(in_use.map(|u| u.direct_writes != self.direct_writes.value)),
                &self.direct_writes.reason,
            ),
        ];
        if let Some(d) = &self.group_commit_window_us {
            out.push(line(
                "group_commit_window",
                format!("{} µs", d.value),
                Use::Advisory,
                &d.reason,
            ));
        }
        if let Some(d) = &self.write_batch_bytes {
            out.push(line("write_batch", human_bytes(d.value), Use::Advisory, &d.reason));
        }
        let d = &self.io_queue_depth;
        out.push(line("io_queue_depth", d.value.to_string(), Use::Advisory, &d.reason));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(buffered: u64, direct: Option<u64>, p50: u64) -> IoTune {
        IoTune {
            format: crate::iotune::FORMAT,
            measured_at_unix_s: 0,
            duration_ms: 1000,
            seq_write_buffered_bytes_per_s: buffered,
            seq_write_direct_bytes_per_s: direct,
            fdatasync_p50_us: p50,
            fdatasync_p99_us: p50 * 4,
            fdatasync_samples: 100,
            random_read_iops: 10_000,
            random_read_direct: true,
        }
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_shard_per_cpu_unless_memory_is_short() {
        let a = derive(HostFacts { cpus: 2, mem_total_bytes: Some(24 * GIB) }, None, None);
        assert_eq!(a.smp.value, 2);
        assert_eq!(a.fetch_cache_bytes.value, 48 << 20, "24 GiB / 256 / 2");
        let small = derive(HostFacts { cpus: 8, mem_total_bytes: Some(3 * GIB) }, None, None);
        assert_eq!(small.smp.value, 3);
        assert_eq!(small.fetch_cache_bytes.value, FETCH_CACHE_BYTES_MIN);
        let big = derive(HostFacts { cpus: 4, mem_total_bytes: Some(1024 * GIB) }, None, None);
        assert_eq!(big.fetch_cache_bytes.value, FETCH_CACHE_BYTES_MAX);
        let unknown = derive(HostFacts { cpus: 4, mem_total_bytes: None }, None, None);
        assert_eq!((unknown.smp.value, unknown.fetch_cache_bytes.value), (4, 32 << 20));
        let one = derive(HostFacts { cpus: 2, mem_total_bytes: Some(24 * GIB) }, None, Some(1));
        assert_eq!(
            (one.smp.value, one.fetch_cache_bytes.value),
            (2, 96 << 20),
            "sized for --smp 1"
        );
    }

    #[test]
    fn iotune_decides_direct_writes_and_the_advisory_figures() {
        let facts = HostFacts { cpus: 2, mem_total_bytes: Some(24 * GIB) };
        let none = derive(facts, None, None);
        assert!(!none.direct_writes.value && none.group_commit_window_us.is_none());

        let fast_direct = derive(facts, Some(&io(500 << 20, Some(1400 << 20), 2000)), None);
        assert!(!fast_direct.direct_writes.value, "page cache even where O_DIRECT is fast");
        assert_eq!(fast_direct.group_commit_window_us.as_ref().map(|d| d.value), Some(2000));
        // 1400 MiB/s × 2 ms = 2.8 MiB, rounded up to 4 KiB.
        let batch = fast_direct.write_batch_bytes.as_ref().map(|d| d.value);
        assert_eq!(batch, Some((1400u64 << 20) * 2 / 1000 / 4096 * 4096 + 4096));

        assert!(
            !derive(facts, Some(&io(1000 << 20, Some(300 << 20), 100)), None).direct_writes.value
        );
        assert!(!derive(facts, Some(&io(1000 << 20, None, 100)), None).direct_writes.value);
        let tiny = derive(facts, Some(&io(1 << 20, None, 10)), None).write_batch_bytes;
        assert_eq!(tiny.map(|d| d.value), Some(64 * 1024), "clamped to the minimum");
    }

    #[test]
    fn lines_tell_applied_from_overridden_and_advisory() {
        let facts = HostFacts { cpus: 2, mem_total_bytes: Some(24 * GIB) };
        let a = derive(facts, Some(&io(500 << 20, Some(1400 << 20), 2000)), None);
        let used = |in_use: Option<&InUse>| -> Vec<(&str, Use)> {
            a.lines(in_use).iter().map(|l| (l.knob, l.used)).collect()
        };
        let in_use = InUse { smp: 1, fetch_cache_bytes: 48 << 20, direct_writes: false };
        assert_eq!(
            used(Some(&in_use)),
            vec![
                ("smp", Use::Overridden),
                ("fetch_cache_bytes", Use::Applied),
                ("direct_writes", Use::Applied),
                ("group_commit_window", Use::Advisory),
                ("write_batch", Use::Advisory),
                ("io_queue_depth", Use::Advisory),
            ]
        );
        assert_eq!(used(None)[0], ("smp", Use::Applied));
    }
}
