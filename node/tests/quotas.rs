//! Client quotas against a real node: set with `odradek quota alter` (AlterClientQuotas), read
//! back with `odradek quota describe`, and enforced on real producers (confluent-kafka over
//! SASL PLAIN, so that each producer is its own principal).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::process::{run_bounded, run_ok, signal_and_wait, stdout_lines};

/// The node under test, stopped (SIGTERM, then SIGKILL) when dropped.
struct Node {
    child: Child,
    plain: String,
    sasl: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal_and_wait(&mut self.child, "-TERM", Duration::from_secs(10));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

fn start() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    std::fs::write(&users, "# PLAIN users\nalice:alice-secret\nbob:bob-secret\n").expect("users");
    let (plain, sasl) =
        (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(["serve", "--smp", "2", "--admin-listen", "none"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listeners")
        .arg(format!("PLAINTEXT://{plain},SASL_PLAINTEXT://{sasl}"))
        .arg("--sasl-enabled-mechanisms")
        .arg("PLAIN")
        .arg("--sasl-plain-users")
        .arg(&users)
        .env("ODRADEK_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start odradek");
    let rx = stdout_lines(&mut child);
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("ready line");
    assert!(line.starts_with("odradek ready"), "{line}");
    Node { child, plain, sasl, _dir: dir }
}

fn odradek(node: &Node, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odradek"));
    cmd.args(args).env("ODRADEK_BROKERS", &node.plain);
    run_ok(&mut cmd, b"", Duration::from_secs(30)).stdout
}

#[test]
fn a_producer_over_its_quota_is_held_to_it_and_another_user_is_not() {
    let node = start();
    odradek(&node, &["topic", "create", "quota-test", "-p", "2"]);
    let out = odradek(
        &node,
        &["quota", "alter", "--user", "alice", "--set", "producer_byte_rate=300000"],
    );
    assert!(out.contains("altered quotas of user=alice"), "{out}");
    let described = odradek(&node, &["quota", "describe", "--user", "alice", "--output", "json"]);
    assert!(
        described.contains("producer_byte_rate") && described.contains("300000"),
        "{described}"
    );
    // A bad key or value is refused with the reason, and changes nothing.
    let mut bad = Command::new(env!("CARGO_BIN_EXE_odradek"));
    bad.args(["quota", "alter", "--user", "alice", "--set", "leader_rate=5"])
        .env("ODRADEK_BROKERS", &node.plain);
    let refused = run_bounded(&mut bad, b"", Duration::from_secs(30))
        .unwrap_or_else(|o| panic!("quota alter did not finish\n{}", o.text()));
    assert!(
        !refused.status.success() && refused.stderr.contains("INVALID_REQUEST"),
        "{}",
        refused.text()
    );
    let all = odradek(&node, &["quota", "describe"]);
    assert!(!all.contains("leader_rate"), "{all}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/quota_check.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args([
        "hold",
        "--bootstrap",
        &node.sasl,
        "--rate",
        "300000",
        "--seconds",
        "35",
    ]);
    let out = run_bounded(&mut cmd, b"", Duration::from_secs(120)).unwrap_or_else(|o| {
        panic!("quota_check.py did not finish\n{}", o.text());
    });
    assert!(out.status.success(), "quota_check.py failed\n{}", out.text());
    eprintln!("{}", out.stdout);

    // Removing the quota frees alice again.
    odradek(&node, &["quota", "alter", "--user", "alice", "--delete", "producer_byte_rate"]);
    let after = odradek(&node, &["quota", "describe"]);
    assert!(!after.contains("alice"), "{after}");
}
