//! The data directory's file system, free space and block device queue settings.

use std::path::{Component, Path, PathBuf};

use super::{
    Change, Check, Ctx, Finding, Severity, human_bytes, missing_or_unreadable, read_or_finding,
    selected,
};
use crate::error::HostError;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount that holds the data directory, and the block device behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDevice {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// `major:minor` of the mount (`0:N` for file systems without a block device).
    pub dev: String,
    /// The device's `queue` directory in sysfs (of the whole disk for a partition); `None`
    /// without a block device.
    pub queue: Option<String>,
}

/// Finds the mount holding `data_dir` in the mount table and the block device behind it.
pub fn data_device(ctx: &Ctx<'_>) -> Result<DataDevice, HostError> {
    let table = ctx.host.read(MOUNTINFO)?;
    let dir = absolute(ctx.data_dir);
    let mut best: Option<(usize, DataDevice)> = None;
    for line in table.lines() {
        let Some(m) = parse_mountinfo_line(line) else { continue };
        let depth = Path::new(&m.mount_point).components().count();
        if dir.starts_with(&m.mount_point) && best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            best = Some((depth, m));
        }
    }
    let (_, mut dev) = best.ok_or_else(|| HostError::Parse {
        path: MOUNTINFO.into(),
        text: format!("no mount holds {}", dir.display()),
    })?;
    if !dev.dev.starts_with("0:") {
        let sys = ctx.host.resolve(&format!("/sys/dev/block/{}", dev.dev))?;
        let disk = if ctx.host.exists(&format!("{sys}/partition")) {
            Path::new(&sys).parent().map_or(sys.clone(), |p| p.display().to_string())
        } else {
            sys
        };
        let queue = format!("{disk}/queue");
        dev.queue = ctx.host.exists(&queue).then_some(queue);
    }
    Ok(dev)
}

/// `data_dir` made absolute, with `.` and `..` folded (no file system access).
fn absolute(data_dir: &Path) -> PathBuf {
    let joined = if data_dir.is_absolute() {
        data_dir.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(data_dir)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `data_dir` as the real host's mount table names it: absolute, with symlinks resolved as far
/// as the path exists (the rest appended). Only for a check of the real host (root `/`).
pub fn real_data_dir(data_dir: &Path) -> PathBuf {
    let abs = absolute(data_dir);
    for ancestor in abs.ancestors() {
        if let Ok(real) = std::fs::canonicalize(ancestor) {
            return real.join(abs.strip_prefix(ancestor).unwrap_or(Path::new("")));
        }
    }
    abs
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_mountinfo_line(line: &str) -> Option<DataDevice> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    Some(DataDevice {
        dev: (*fields.get(2)?).to_owned(),
        mount_point: unescape(fields.get(4)?),
        fs_type: right.next()?.to_owned(),
        source: right.next().unwrap_or("").to_owned(),
        queue: None,
    })
}

/// Mount tables escape space, tab, newline and backslash as `\040`-style octal.
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|o| {
            let text = std::str::from_utf8(o).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The data directory is on XFS or ext4, on a local disk.
#[derive(Debug)]
pub struct FileSystem;

impl Check for FileSystem {
    fn id(&self) -> &'static str {
        "data_dir.filesystem"
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let dev = match data_device(ctx) {
            Ok(d) => d,
            Err(e) => return missing_or_unreadable(self.id(), &e),
        };
        let current = format!("{} on {} ({})", dev.fs_type, dev.mount_point, dev.source);
        let finding = Finding::new(self.id(), Severity::Ok, current).recommend("xfs or ext4");
        let risky = ["tmpfs", "ramfs", "overlay", "nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs"];
        let fs = dev.fs_type.as_str();
        let severity = match fs {
            "xfs" | "ext4" => return finding,
            _ if risky.contains(&fs) || fs.starts_with("fuse") => Severity::Warning,
            _ => Severity::Info,
        };
        let why = match fs {
            "tmpfs" | "ramfs" => "lives in memory: nothing survives a reboot, fsync is a no-op",
            "overlay" => "a container layer: slower writes, lost with the container",
            _ if severity == Severity::Warning => {
                "a network or user-space file system: fsync and O_DIRECT guarantees vary"
            }
            _ => "untested with odradek",
        };
        Finding { severity, ..finding }
            .fix(format!("{fs} {why}; put the data dir on XFS or ext4 on a local disk"))
    }
}

/// Below this share of free space, a warning.
const FREE_PERCENT_MIN: u64 = 10;

/// The data directory's file system has room.
#[derive(Debug)]
pub struct FreeSpace;

impl Check for FreeSpace {
    fn id(&self) -> &'static str {
        "data_dir.free_space"
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        // The data dir may not exist yet: ask about the nearest directory that does.
        let real = ctx.host.path(&absolute(ctx.data_dir));
        let existing = real.ancestors().find(|p| p.exists()).unwrap_or(ctx.host.root());
        let space = match ctx.system.space(existing) {
            Ok(s) => s,
            Err(e) => {
                return Finding::new(self.id(), Severity::Info, "unknown")
                    .fix(format!("statvfs({}) failed: {e}", existing.display()));
            }
        };
        let percent =
            (space.free_bytes.saturating_mul(100)).checked_div(space.total_bytes).unwrap_or(0);
        let current = format!(
            "{} free of {} ({percent}%)",
            human_bytes(space.free_bytes),
            human_bytes(space.total_bytes)
        );
        let finding = Finding::new(self.id(), Severity::Ok, current)
            .recommend(format!(">= {FREE_PERCENT_MIN}% free"));
        if percent >= FREE_PERCENT_MIN {
            return finding;
        }
        Finding { severity: Severity::Warning, ..finding }.fix(
            "a full disk refuses appends: free space, add retention.ms / retention.bytes to \
             topics, or move the data dir",
        )
    }
}

/// Finds the data device's queue directory, or says why the check does not apply.
fn queue_dir(ctx: &Ctx<'_>) -> Result<String, String> {
    match data_device(ctx) {
        Ok(DataDevice { queue: Some(q), .. }) => Ok(q),
        Ok(d) => Err(format!("{} on {} has no block device", d.fs_type, d.mount_point)),
        Err(e) => Err(format!("cannot find the data device: {e}")),
    }
}

/// Reads `<queue>/<name>` of the data device: `(queue, path, text)`, or the finding to report
/// (no device: not applicable; the file missing or unreadable).
fn read_queue_file(
    ctx: &Ctx<'_>,
    id: &'static str,
    name: &str,
) -> Result<(String, String, String), Box<Finding>> {
    let queue = queue_dir(ctx)
        .map_err(|why| Box::new(Finding::new(id, Severity::NotApplicable, "n/a").fix(why)))?;
    let path = format!("{queue}/{name}");
    let text = read_or_finding(ctx, id, &path)?;
    Ok((queue, path, text))
}

/// The data device's I/O scheduler: `none` on SSD/NVMe/virtio (the device or host schedules;
/// the node already writes large sequential batches), `mq-deadline` on spinning disks.
#[derive(Debug)]
pub struct Scheduler;

impl Check for Scheduler {
    fn id(&self) -> &'static str {
        "disk.scheduler"
    }

    fn is_supported(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        queue_dir(ctx).map(drop)
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let (queue, path, text) = match read_queue_file(ctx, self.id(), "scheduler") {
            Ok(read) => read,
            Err(f) => return *f,
        };
        let Some(current) = selected(&text).or((text == "none").then_some("none")) else {
            return Finding::unreadable(self.id(), &HostError::Parse { path, text });
        };
        // virtio-blk reports itself rotational whatever backs it; the hypervisor schedules.
        let virtio = queue.contains("/virtio");
        let rotational =
            !virtio && ctx.host.read(&format!("{queue}/rotational")).is_ok_and(|r| r == "1");
        let want = if rotational { "mq-deadline" } else { "none" };
        let finding = Finding::new(self.id(), Severity::Ok, current).recommend(want);
        if current == want {
            return finding;
        }
        let finding = Finding { severity: Severity::Info, ..finding };
        if !text.split_whitespace().any(|s| s.trim_matches(['[', ']']) == want) {
            return finding.fix(format!("this kernel offers no {want} scheduler"));
        }
        let why = if rotational {
            "a spinning disk wants requests sorted"
        } else if virtio {
            "a virtio disk: the hypervisor schedules, the guest's scheduler only adds latency"
        } else {
            "a fast device (or the hypervisor) schedules better than the guest"
        };
        finding
            .fix(format!("{why}: `echo {want} > {path}` (persist with a udev rule)"))
            .change(Change::new(path, current, want))
    }
}

/// The data device does not try to merge requests (`nomerges` = 2): the node already writes
/// large vectored batches, so merging is CPU spent for nothing.
#[derive(Debug)]
pub struct NoMerges;

impl Check for NoMerges {
    fn id(&self) -> &'static str {
        "disk.nomerges"
    }

    fn is_supported(&self, ctx: &Ctx<'_>) -> Result<(), String> {
        queue_dir(ctx).map(drop)
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let (_, path, text) = match read_queue_file(ctx, self.id(), "nomerges") {
            Ok(read) => read,
            Err(f) => return *f,
        };
        let Ok(current) = text.parse::<u64>() else {
            return Finding::unreadable(self.id(), &HostError::Parse { path, text });
        };
        let finding = Finding::new(self.id(), Severity::Ok, current.to_string()).recommend("2");
        if current == 2 {
            return finding;
        }
        Finding { severity: Severity::Info, ..finding }
            .fix(format!(
                "the node writes whole batches; merging only costs CPU: `echo 2 > {path}`"
            ))
            .change(Change::new(path, current.to_string(), "2"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fake::Fake;

    const ROOT_EXT4: &str = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n";
    const VDA: &str = "/sys/devices/pci0000:00/virtio1/block/vda";

    fn with_vda(fake: &Fake) {
        fake.file(MOUNTINFO, ROOT_EXT4);
        fake.link("/sys/dev/block/254:0", "../../devices/pci0000:00/virtio1/block/vda");
        fake.file(&format!("{VDA}/queue/scheduler"), "none [mq-deadline] kyber bfq\n");
        fake.file(&format!("{VDA}/queue/nomerges"), "0\n");
        fake.file(&format!("{VDA}/queue/rotational"), "0\n");
    }

    #[test]
    fn the_longest_mount_prefix_holds_the_data_dir_and_sysfs_links_lead_to_its_queue() {
        let fake = Fake::new();
        with_vda(&fake);
        let d = data_device(&fake.ctx()).expect("device");
        assert_eq!(
            (d.fs_type.as_str(), d.queue.as_deref()),
            ("ext4", Some(&*format!("{VDA}/queue")))
        );

        // A partition: its queue is the whole disk's.
        fake.file(
            MOUNTINFO,
            &format!("{ROOT_EXT4}40 27 259:1 / /var/lib\\040data rw - xfs /dev/nvme0n1p1 rw\n"),
        );
        let nvme = "/sys/devices/pci0000:00/nvme/nvme0/nvme0n1";
        fake.link("/sys/dev/block/259:1", "../../devices/pci0000:00/nvme/nvme0/nvme0n1/nvme0n1p1");
        fake.file(&format!("{nvme}/nvme0n1p1/partition"), "1\n");
        fake.file(&format!("{nvme}/queue/scheduler"), "[none] mq-deadline\n");
        let mut fake = fake;
        fake.data_dir = PathBuf::from("/var/lib data/odradek/../odradek");
        let d = data_device(&fake.ctx()).expect("device");
        assert_eq!(d.mount_point, "/var/lib data");
        assert_eq!(d.queue, Some(format!("{nvme}/queue")));
        assert_eq!(FileSystem.check(&fake.ctx()).severity, Severity::Ok);
        assert_eq!(Scheduler.check(&fake.ctx()).severity, Severity::Ok);
    }

    #[test]
    fn the_real_data_dir_follows_symlinks_as_far_as_the_path_exists() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("disk")).expect("mkdir");
        std::os::unix::fs::symlink(tmp.path().join("disk"), tmp.path().join("link")).expect("ln");
        let real = std::fs::canonicalize(tmp.path().join("disk")).expect("canonical");
        let got = real_data_dir(&tmp.path().join("link/not-yet/../data"));
        assert_eq!(got, real.join("data"));
    }

    #[test]
    fn tmpfs_and_overlay_warn_and_have_no_device_checks() {
        let fake = Fake::new();
        fake.file(MOUNTINFO, &format!("{ROOT_EXT4}50 27 0:45 / /var/lib rw - tmpfs tmpfs rw\n"));
        let f = FileSystem.check(&fake.ctx());
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.fix.contains("tmpfs lives in memory"), "{}", f.fix);
        assert!(Scheduler.is_supported(&fake.ctx()).is_err());
        assert!(NoMerges.is_supported(&fake.ctx()).is_err());
        fake.file(MOUNTINFO, "1 0 0:30 / / rw - overlay overlay rw\n");
        assert_eq!(FileSystem.check(&fake.ctx()).severity, Severity::Warning);
        fake.file(MOUNTINFO, "1 0 0:30 / / rw - btrfs /dev/sda rw\n");
        assert_eq!(FileSystem.check(&fake.ctx()).severity, Severity::Info);
    }

    #[test]
    fn a_missing_or_unreadable_mount_table_does_not_fail() {
        let fake = Fake::new();
        assert_eq!(FileSystem.check(&fake.ctx()).severity, Severity::NotApplicable);
        fake.dir(MOUNTINFO);
        assert_eq!(FileSystem.check(&fake.ctx()).current, "unknown");
    }

    #[test]
    fn scheduler_and_nomerges_recommend_changes_the_kernel_offers() {
        let fake = Fake::new();
        with_vda(&fake);
        let s = Scheduler.check(&fake.ctx());
        assert_eq!((s.current.as_str(), s.recommended.as_str()), ("mq-deadline", "none"));
        assert_eq!(
            s.changes,
            vec![Change::new(format!("{VDA}/queue/scheduler"), "mq-deadline", "none")]
        );
        fake.file(&format!("{VDA}/queue/rotational"), "1\n");
        let virtio = Scheduler.check(&fake.ctx());
        assert_eq!(virtio.recommended, "none", "virtio's rotational flag is not trusted");
        let sda = "/sys/devices/pci0000:00/ata1/block/sda";
        fake.file(MOUNTINFO, "27 1 8:0 / / rw - ext4 /dev/sda rw\n");
        fake.link("/sys/dev/block/8:0", "../../devices/pci0000:00/ata1/block/sda");
        fake.file(&format!("{sda}/queue/scheduler"), "none [mq-deadline]\n");
        fake.file(&format!("{sda}/queue/rotational"), "1\n");
        let spinning = Scheduler.check(&fake.ctx());
        assert_eq!(spinning.severity, Severity::Ok, "a spinning disk keeps mq-deadline");
        fake.file(MOUNTINFO, ROOT_EXT4);
        let n = NoMerges.check(&fake.ctx());
        assert_eq!((n.severity, n.changes[0].to.as_str()), (Severity::Info, "2"));
        std::fs::remove_file(fake.host.path(Path::new(&format!("{VDA}/queue/nomerges"))))
            .expect("rm");
        assert_eq!(NoMerges.check(&fake.ctx()).severity, Severity::NotApplicable);
    }

    #[test]
    fn free_space_below_ten_percent_warns_and_a_failing_statvfs_is_unknown() {
        let mut fake = Fake::new();
        assert_eq!(FreeSpace.check(&fake.ctx()).severity, Severity::Ok);
        fake.system.space = Ok(crate::host::Space { free_bytes: 5 << 30, total_bytes: 100 << 30 });
        let f = FreeSpace.check(&fake.ctx());
        assert_eq!(
            (f.severity, f.current.as_str()),
            (Severity::Warning, "5 GiB free of 100 GiB (5%)")
        );
        fake.system.space = Err(std::io::ErrorKind::PermissionDenied);
        assert_eq!(FreeSpace.check(&fake.ctx()).current, "unknown");
    }
}
