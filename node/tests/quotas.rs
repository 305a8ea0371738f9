//! Client quotas against a real node: set with `odradek quota alter` (AlterClientQuotas), read
//! back with `odradek quota describe`, and enforced on real producers (confluent-kafka over
//! SASL PLAIN, so that each producer is its own principal).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::free_port;
use common::process::{Served, run_bounded, run_ok};

/// The node under test: a PLAINTEXT listener for the CLI and a SASL_PLAINTEXT one (PLAIN,
/// users `alice` and `bob`) for the producers.
struct Node {
    served: Served,
    plain: String,
    sasl: String,
}

fn start() -> Node {
    let users = tempfile::NamedTempFile::new().expect("users file");
    std::fs::write(users.path(), "# PLAIN users\nalice:alice-secret\nbob:bob-secret\n")
        .expect("users");
    let (plain, sasl) = (
        format!("127.0.0.1:{}", free_port("127.0.0.1")),
        format!("127.0.0.1:{}", free_port("127.0.0.1")),
    );
    let users_path = users.path().to_string_lossy().into_owned();
    let served = Served::start(&[
        "--smp".into(),
        "2".into(),
        "--admin-listen".into(),
        "none".into(),
        "--listeners".into(),
        format!("PLAINTEXT://{plain},SASL_PLAINTEXT://{sasl}"),
        "--sasl-enabled-mechanisms".into(),
        "PLAIN".into(),
        "--sasl-plain-users".into(),
        users_path,
    ]);
    // The users file is read at start-up; the temp file may go now.
    drop(users);
    Node { served, plain, sasl }
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
    assert!(out.status.success(), "quota_check.py failed\n{}{}", out.text(), node.served.logs());
    eprintln!("{}", out.stdout);

    // Removing the quota frees alice again.
    odradek(&node, &["quota", "alter", "--user", "alice", "--delete", "producer_byte_rate"]);
    let after = odradek(&node, &["quota", "describe"]);
    assert!(!after.contains("alice"), "{after}");
}
