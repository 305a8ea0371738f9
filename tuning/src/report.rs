//! How findings are shown to a person: the table, and the shell script `--script` writes.

use std::fmt::Write as _;
use std::path::Path;

use crate::checks::{Finding, Severity};
use crate::error::ScriptError;

/// Widest a column gets before its text is cut (the fix column is never cut: it is last).
const COLUMN_WIDTH_MAX: usize = 48;

fn cut(s: &str) -> String {
    if s.chars().count() <= COLUMN_WIDTH_MAX {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(COLUMN_WIDTH_MAX - 1).collect();
    out.push('…');
    out
}

/// The table `odradek tune` prints: check, current, recommended, severity, fix.
pub fn table(findings: &[Finding]) -> String {
    let header = ["CHECK", "CURRENT", "RECOMMENDED", "SEVERITY", "FIX"];
    let rows: Vec<[String; 5]> = findings
        .iter()
        .map(|f| {
            [
                f.id.to_owned(),
                cut(&f.current),
                cut(&f.recommended),
                f.severity.to_string(),
                f.fix.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                let _ = write!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}

/// One line summing the findings up: `2 warnings, 5 info, 0 fatal`.
pub fn summary(findings: &[Finding]) -> String {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let fixable = findings.iter().filter(|f| !f.changes.is_empty()).count();
    format!(
        "{} fatal, {} warning(s), {} info, {} ok, {} n/a; {fixable} fixable with --apply (as root)",
        count(Severity::Fatal),
        count(Severity::Warning),
        count(Severity::Info),
        count(Severity::Ok),
        count(Severity::NotApplicable),
    )
}

/// A quoted string for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The bash script that makes the same changes `--apply` would.
pub fn script(findings: &[Finding]) -> String {
    let mut out = String::from(
        "#!/usr/bin/env bash\n# Written by `odradek tune --script`: the changes `odradek tune --apply` would make.\n\
         # Run as root. They last until reboot: persist sysctls in /etc/sysctl.d/99-odradek.conf\n\
         # and sysfs settings with a udev rule or tmpfiles.d.\nset -euo pipefail\n",
    );
    for f in findings.iter().filter(|f| !f.changes.is_empty()) {
        let _ = writeln!(out, "\n# {}: {} -> {}", f.id, f.current, f.recommended);
        for c in &f.changes {
            match c.sysctl_key() {
                Some(key) => {
                    let _ = writeln!(out, "sysctl -w {}", quote(&format!("{key}={}", c.to)));
                }
                None => {
                    let _ = writeln!(out, "echo {} > {}", quote(&c.to), quote(&c.path));
                }
            }
        }
    }
    out
}

/// Writes [`script`] to `path`, executable.
pub fn write_script(path: &Path, findings: &[Finding]) -> Result<(), ScriptError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| ScriptError { path: path.to_owned(), source };
    std::fs::write(path, script(findings)).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Change;

    fn findings() -> Vec<Finding> {
        vec![
            Finding::new("vm.swappiness", Severity::Warning, "60")
                .recommend("<= 1")
                .fix("lower it")
                .change(Change::new("/proc/sys/vm/swappiness", "60", "1")),
            Finding::new("disk.nomerges", Severity::Info, "0").recommend("2").change(Change::new(
                "/sys/block/vda/queue/nomerges",
                "0",
                "2",
            )),
            Finding::new("cpu.governor", Severity::NotApplicable, "n/a").fix("no cpufreq"),
        ]
    }

    #[test]
    fn the_table_has_a_row_per_check_with_aligned_columns() {
        let t = table(&findings());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("CHECK"));
        let col = lines[0].find("SEVERITY").expect("header");
        assert_eq!(&lines[1][col..col + 7], "warning");
        assert_eq!(&lines[3][col..col + 3], "n/a");
        assert!(
            summary(&findings())
                .starts_with("0 fatal, 1 warning(s), 1 info, 0 ok, 1 n/a; 2 fixable")
        );
    }

    #[test]
    fn the_script_uses_sysctl_for_proc_sys_and_echo_for_sysfs() {
        let s = script(&findings());
        assert!(s.starts_with("#!/usr/bin/env bash\n"));
        assert!(s.contains("\nsysctl -w 'vm.swappiness=1'\n"), "{s}");
        assert!(s.contains("\necho '2' > '/sys/block/vda/queue/nomerges'\n"), "{s}");
        assert!(!s.contains("cpu.governor"));
    }
}
