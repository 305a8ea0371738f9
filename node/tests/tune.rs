//! `odradek tune` and the start-up host checks of `odradek serve`, run as the real binary
//! against a fake /proc and /sys tree (`--root`, and serve's hidden `--host-root`).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use odradek_tuning::iotune::{self, IoTune};

fn odradek(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(args)
        .env("ODRADEK_LOG", "info")
        .output()
        .expect("run odradek")
}

/// The log without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Writes `text` at the host path `path` under `root`.
fn put(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path.trim_start_matches('/'))).expect("read")
}

/// A host with defaults that hurt: swappiness 60, small backlogs, THP always, mq-deadline.
fn fake_host() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    put(root, "/proc/sys/kernel/io_uring_disabled", "0\n");
    put(root, "/proc/sys/kernel/osrelease", "6.18.0\n");
    put(root, "/proc/sys/vm/swappiness", "60\n");
    put(root, "/proc/sys/net/ipv4/tcp_max_syn_backlog", "512\n");
    put(root, "/sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never\n");
    put(root, "/proc/self/mountinfo", "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n");
    let queue = "/sys/devices/virtio1/block/vda/queue";
    put(root, &format!("{queue}/scheduler"), "none [mq-deadline]\n");
    put(root, &format!("{queue}/nomerges"), "0\n");
    std::fs::create_dir_all(root.join("sys/dev/block")).expect("mkdir");
    std::os::unix::fs::symlink("../../devices/virtio1/block/vda", root.join("sys/dev/block/254:0"))
        .expect("symlink");
    put(root, "/proc/meminfo", "MemTotal: 24681696 kB\n");
    dir
}

#[test]
fn tune_prints_a_table_writes_a_script_and_applies_to_the_fake_tree() {
    let host = fake_host();
    let root = host.path().to_str().expect("utf8");
    let base = ["tune", "--root", root, "--data-dir", "/var/lib/odradek"];

    let out = odradek(&base);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let row = |id: &str| t.lines().find(|l| l.starts_with(id)).unwrap_or_default().to_owned();
    assert!(row("CHECK").contains("SEVERITY"), "{t}");
    assert!(row("vm.swappiness ").contains("warning"), "{t}");
    assert!(row("cpu.governor").contains("n/a"), "no cpufreq in the tree: {t}");
    assert!(row("disk.scheduler").contains("mq-deadline"), "{t}");
    assert!(row("vm.max_map_count").contains("n/a"), "missing from the tree: {t}");
    assert_eq!(read(host.path(), "/proc/sys/vm/swappiness"), "60\n", "checking changes nothing");

    let script = host.path().join("fix.sh");
    let script_arg = script.to_str().expect("utf8");
    let out = odradek(&[&base[..], &["--script", script_arg]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let s = std::fs::read_to_string(&script).expect("script");
    assert!(s.contains("sysctl -w 'vm.swappiness=1'"), "{s}");
    assert!(s.contains("echo 'madvise' > '/sys/kernel/mm/transparent_hugepage/enabled'"), "{s}");
    let syntax = Command::new("bash").arg("-n").arg(&script).status().expect("bash -n");
    assert!(syntax.success(), "the script parses");
    assert_eq!(read(host.path(), "/proc/sys/vm/swappiness"), "60\n", "--script changes nothing");

    let out = odradek(&[&base[..], &["--apply"]].concat());
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("changed /proc/sys/vm/swappiness: 60 -> 1"), "{t}");
    assert_eq!(read(host.path(), "/proc/sys/vm/swappiness"), "1");
    assert_eq!(read(host.path(), "/proc/sys/net/ipv4/tcp_max_syn_backlog"), "4096");
    assert_eq!(read(host.path(), "/sys/kernel/mm/transparent_hugepage/enabled"), "madvise");
    assert_eq!(read(host.path(), "/sys/devices/virtio1/block/vda/queue/scheduler"), "none");
}

#[test]
fn tune_exits_non_zero_on_a_fatal_finding() {
    let host = fake_host();
    put(host.path(), "/proc/sys/kernel/io_uring_disabled", "2\n");
    let root = host.path().to_str().expect("utf8");
    let out = odradek(&["tune", "--root", root, "--data-dir", "/var/lib/odradek"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.lines().any(|l| l.starts_with("io_uring ") && l.contains("fatal")), "{t}");
}

#[test]
fn serve_refuses_to_start_when_io_uring_is_disabled() {
    let host = fake_host();
    put(host.path(), "/proc/sys/kernel/io_uring_disabled", "2\n");
    let data = tempfile::tempdir().expect("tempdir");
    let out = odradek(&[
        "serve",
        "--host-root",
        host.path().to_str().expect("utf8"),
        "--data-dir",
        data.path().to_str().expect("utf8"),
        "--listen",
        "127.0.0.1:0",
    ]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    let line = t.lines().find(|l| l.starts_with("odradek: ")).unwrap_or_default();
    assert!(line.contains("kernel.io_uring_disabled = 2"), "{t}");
    assert!(line.contains("Fix: run `sysctl -w kernel.io_uring_disabled=0`"), "{t}");
}

#[test]
fn serve_logs_each_host_warning_once_and_its_autotune_decisions() {
    let host = fake_host();
    let data = tempfile::tempdir().expect("tempdir");
    // Whatever iotune measured, autotune writes through the page cache (issue 14).
    let measured = IoTune {
        format: iotune::FORMAT,
        measured_at_unix_s: 0,
        duration_ms: 1000,
        seq_write_buffered_bytes_per_s: 1 << 30,
        seq_write_direct_bytes_per_s: Some(100 << 20),
        fdatasync_p50_us: 700,
        fdatasync_p99_us: 9000,
        fdatasync_samples: 1000,
        random_read_iops: 20_000,
        random_read_direct: true,
    };
    iotune::save(data.path(), &measured).expect("save");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(["serve", "--host-root", host.path().to_str().expect("utf8"), "--data-dir"])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--smp", "1"])
        .env("ODRADEK_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start odradek");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout).lines().next();
    // SIGKILL by PID; the stderr written before the ready line is all this test reads.
    let _ = child.kill();
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    let _ = child.wait();
    let stderr = strip_ansi(&stderr);
    assert!(ready.is_some_and(|l| l.is_ok_and(|l| l.contains("odradek ready"))), "{stderr}");

    let swappiness: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("host check") && l.contains("vm.swappiness"))
        .collect();
    assert_eq!(swappiness.len(), 1, "logged once: {stderr}");
    assert!(swappiness[0].contains("WARN") && swappiness[0].contains("sysctl -w"), "{stderr}");
    let decision = |knob: &str| {
        stderr
            .lines()
            .find(|l| l.contains("autotune") && l.contains(&format!("knob=\"{knob}\"")))
            .unwrap_or_default()
            .to_owned()
    };
    let direct = decision("direct_writes");
    assert!(direct.contains("value=false") && direct.contains("applied=true"), "{stderr}");
    let smp = decision("smp");
    assert!(smp.contains("overridden=true"), "--smp 1 overrides it: {stderr}");
    let cache = decision("fetch_cache_bytes");
    assert!(cache.contains("over 1 shard(s)"), "sized for the configured shards: {stderr}");
    assert!(decision("group_commit_window").contains("advisory=true"), "{stderr}");
}
