//! Numeric sysctls: one table row each, compared with a bound.

use super::{Change, Check, Ctx, Finding, Severity, read_or_finding};

/// Which side of the bound is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    AtLeast(u64),
    AtMost(u64),
}

/// One numeric sysctl. `field` picks one number of a multi-number setting (`tcp_rmem` is
/// `min default max`); the others are kept as they are when it is changed.
#[derive(Debug, Clone, Copy)]
pub struct Sysctl {
    pub key: &'static str,
    pub field: Option<usize>,
    pub bound: Bound,
    pub severity: Severity,
    pub why: &'static str,
}

const MIB: u64 = 1024 * 1024;

/// The sysctls the node cares about, with why.
pub fn all() -> Vec<Sysctl> {
    use Bound::{AtLeast, AtMost};
    use Severity::{Info, Warning};
    let s = |key, field, bound, severity, why| Sysctl { key, field, bound, severity, why };
    vec![
        s(
            "vm.swappiness",
            None,
            AtMost(1),
            Warning,
            "a swapped-out shard stalls every partition it owns",
        ),
        s(
            "vm.max_map_count",
            None,
            AtLeast(262_144),
            Info,
            "each open segment and index may map memory; many partitions need many maps",
        ),
        s(
            "fs.aio-max-nr",
            None,
            AtLeast(1_048_576),
            Info,
            "only libaio counts against it (odradek uses io_uring), but tools beside it (fio, other databases) may not",
        ),
        s(
            "net.core.somaxconn",
            None,
            AtLeast(4096),
            Warning,
            "caps each shard's listen backlog (1024 asked); bursts of connections are refused beyond it",
        ),
        s(
            "net.ipv4.tcp_max_syn_backlog",
            None,
            AtLeast(4096),
            Warning,
            "half-open connections beyond it are dropped during connection storms",
        ),
        s(
            "net.core.rmem_max",
            None,
            AtLeast(16 * MIB),
            Info,
            "caps the receive buffer a socket may set; large produce requests want a large window",
        ),
        s(
            "net.core.wmem_max",
            None,
            AtLeast(16 * MIB),
            Info,
            "caps the send buffer a socket may set; large fetch responses want a large window",
        ),
        s(
            "net.ipv4.tcp_rmem",
            Some(2),
            AtLeast(16 * MIB),
            Info,
            "the largest receive window TCP auto-tuning may grow to",
        ),
        s(
            "net.ipv4.tcp_wmem",
            Some(2),
            AtLeast(16 * MIB),
            Info,
            "the largest send buffer TCP auto-tuning may grow to",
        ),
    ]
}

impl Sysctl {
    fn path(&self) -> String {
        format!("/proc/sys/{}", self.key.replace('.', "/"))
    }

    fn good(&self, value: u64) -> bool {
        match self.bound {
            Bound::AtLeast(min) => value >= min,
            Bound::AtMost(max) => value <= max,
        }
    }

    fn target(&self) -> u64 {
        match self.bound {
            Bound::AtLeast(v) | Bound::AtMost(v) => v,
        }
    }

    fn recommended(&self) -> String {
        match self.bound {
            Bound::AtLeast(v) => format!(">= {v}"),
            Bound::AtMost(v) => format!("<= {v}"),
        }
    }
}

impl Check for Sysctl {
    fn id(&self) -> &'static str {
        self.key
    }

    fn check(&self, ctx: &Ctx<'_>) -> Finding {
        let path = self.path();
        let text = match read_or_finding(ctx, self.key, &path) {
            Ok(t) => t,
            Err(f) => return *f,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let index = self.field.unwrap_or(0);
        let Some(value) = fields.get(index).and_then(|v| v.parse::<u64>().ok()) else {
            let err = crate::error::HostError::Parse { path, text };
            return Finding::unreadable(self.key, &err);
        };
        let current = fields.join(" ");
        let finding =
            Finding::new(self.key, Severity::Ok, current.clone()).recommend(self.recommended());
        if self.good(value) {
            return finding;
        }
        let mut new_fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        new_fields[index] = self.target().to_string();
        let to = new_fields.join(" ");
        Finding { severity: self.severity, ..finding }
            .fix(format!(
                "{}: `sysctl -w {}=\"{to}\"`; persist it in /etc/sysctl.d/99-odradek.conf",
                self.why, self.key
            ))
            .change(Change::new(path, current, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fake::Fake;

    fn find(key: &str) -> Sysctl {
        all().into_iter().find(|s| s.key == key).expect("known sysctl")
    }

    #[test]
    fn a_good_value_passes_and_a_bad_one_says_how_to_fix_it() {
        let fake = Fake::new();
        fake.file("/proc/sys/vm/swappiness", "1\n");
        let ok = find("vm.swappiness").check(&fake.ctx());
        assert_eq!((ok.severity, ok.current.as_str()), (Severity::Ok, "1"));
        assert!(ok.changes.is_empty());

        fake.file("/proc/sys/vm/swappiness", "60\n");
        let bad = find("vm.swappiness").check(&fake.ctx());
        assert_eq!(bad.severity, Severity::Warning);
        assert_eq!((bad.current.as_str(), bad.recommended.as_str()), ("60", "<= 1"));
        assert!(bad.fix.contains("sysctl -w vm.swappiness=\"1\""), "{}", bad.fix);
        assert_eq!(bad.changes, vec![Change::new("/proc/sys/vm/swappiness", "60", "1")]);
    }

    #[test]
    fn a_multi_number_setting_changes_only_its_field() {
        let fake = Fake::new();
        fake.file("/proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t4194304\n");
        let f = find("net.ipv4.tcp_wmem").check(&fake.ctx());
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.changes[0].to, "4096 16384 16777216");
        fake.file("/proc/sys/net/ipv4/tcp_wmem", "4096 16384 33554432");
        assert_eq!(find("net.ipv4.tcp_wmem").check(&fake.ctx()).severity, Severity::Ok);
    }

    #[test]
    fn missing_is_not_applicable_and_unreadable_or_garbage_is_unknown() {
        let fake = Fake::new();
        let missing = find("fs.aio-max-nr").check(&fake.ctx());
        assert_eq!(missing.severity, Severity::NotApplicable);

        fake.dir("/proc/sys/fs/aio-max-nr");
        let unreadable = find("fs.aio-max-nr").check(&fake.ctx());
        assert_eq!((unreadable.severity, unreadable.current.as_str()), (Severity::Info, "unknown"));
        assert!(unreadable.fix.contains("/proc/sys/fs/aio-max-nr"), "{}", unreadable.fix);

        fake.file("/proc/sys/net/core/somaxconn", "lots");
        let garbage = find("net.core.somaxconn").check(&fake.ctx());
        assert_eq!(garbage.current, "unknown");
    }
}
