//! TLS, SASL and ACLs with real clients: confluent-kafka (librdkafka 2.16), kafka-python and kcat
//! against real `odradek serve` processes.
//!
//! Each test makes a test CA and certificates (`tests/clients/make_test_certs.sh`), writes a
//! PLAIN users file holding the super user `admin`, starts a node with four listeners on free
//! loopback ports (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), the ACL authorizer and the three
//! SASL mechanisms, and runs one mode of `tests/clients/security_check.py`, which prints one line
//! per check and `OK <mode>`, or `FAIL: <reason>` and exits 1. The TLS test starts a second node
//! whose SSL listener requires a client certificate (`--ssl-client-auth` applies to every TLS
//! listener of a node), with a SASL_PLAINTEXT listener for its admin and
//! `--allow-everyone-if-no-acl-found`.
//!
//! Every wait is bounded: the ready line, the script (its own waits too). The tests take a
//! process-wide lock: each starts one or two nodes and several client processes, and the
//! brute-force check measures latency, so they run one at a time. Nothing is skipped: a missing
//! client (kcat, the Python packages of `tests/clients/requirements.txt`) or `openssl` fails.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::process::{Out, Served, run_bounded};

/// Bound on one run of the script (each mode takes well under a minute on a quiet machine).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on making the certificates.
const CERTS_TIMEOUT: Duration = Duration::from_secs(30);
/// Node log lines shown in failure messages.
const LOG_LINES_KEPT: usize = 80;

const SUPER_USERS: &str = "User:admin";
const MECHANISMS: &str = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512";

static LOCK: Mutex<()> = Mutex::new(());

fn serialized() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

/// `n` distinct free loopback ports (all bound at once, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// The certificates, the users file and the data directories of one test.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        let out = run_bounded(
            Command::new("sh").arg(clients_dir().join("make_test_certs.sh")).arg(&certs),
            b"",
            CERTS_TIMEOUT,
        )
        .unwrap_or_else(|o| panic!("make_test_certs.sh still running\n{}", o.text()));
        assert!(out.status.success(), "make_test_certs.sh failed\n{}", out.text());
        std::fs::write(dir.path().join("users"), "# PLAIN users\nadmin:admin-secret\n")
            .expect("write the users file");
        Setup { dir }
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn cert(&self, name: &str) -> String {
        self.certs().join(name).to_str().expect("utf-8 path").to_owned()
    }

    fn users(&self) -> String {
        self.dir.path().join("users").to_str().expect("utf-8 path").to_owned()
    }

    /// The flags every node here gets: TLS files, SASL, the ACL authorizer.
    fn security_flags(&self) -> Vec<String> {
        [
            "--authorizer",
            "acl",
            "--super-users",
            SUPER_USERS,
            "--sasl-enabled-mechanisms",
            MECHANISMS,
            "--sasl-plain-users",
            &self.users(),
            "--ssl-cert",
            &self.cert("server.pem"),
            "--ssl-key",
            &self.cert("server.key"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

/// A running `odradek serve` (stopped when dropped) and its listeners.
struct Node {
    served: Served,
    /// listener name → `127.0.0.1:port`
    listeners: Vec<(String, String)>,
}

impl Node {
    /// Starts a node with `names` listeners on free ports and `extra` flags.
    fn start(names: &[&str], smp: &str, extra: &[String]) -> Node {
        let listeners: Vec<(String, String)> = names
            .iter()
            .zip(free_ports(names.len()))
            .map(|(n, p)| ((*n).to_owned(), format!("127.0.0.1:{p}")))
            .collect();
        let spec: Vec<String> = listeners.iter().map(|(n, a)| format!("{n}://{a}")).collect();
        let mut flags: Vec<String> =
            vec!["--listeners".into(), spec.join(","), "--smp".into(), smp.into()];
        flags.extend(["--admin-listen".into(), "none".into()]);
        flags.extend(extra.iter().cloned());
        Node { served: Served::start(&flags), listeners }
    }

    /// A node with all four listeners and the security flags.
    fn four_listeners(setup: &Setup) -> Node {
        Node::start(
            &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
            "2",
            &setup.security_flags(),
        )
    }

    fn addr(&self, name: &str) -> &str {
        &self.listeners.iter().find(|(n, _)| n == name).expect("listener").1
    }

    fn logs(&self) -> String {
        let log = self.served.logs();
        let lines: Vec<&str> = log.lines().collect();
        let last = &lines[lines.len().saturating_sub(LOG_LINES_KEPT)..];
        format!("\n--- node log (last {} lines) ---\n{}", last.len(), last.join("\n"))
    }

    fn assert_alive(&mut self) {
        let status = self.served.child.try_wait().expect("poll the node");
        assert!(status.is_none(), "the node exited ({status:?}){}", self.logs());
    }
}

/// Runs `security_check.py MODE` with the listeners of `node` (and `extra` arguments); asserts it
/// printed `OK MODE` and exited 0, and that the node(s) still run. Returns its output.
fn security_check(setup: &Setup, nodes: &mut [&mut Node], mode: &str, extra: &[&str]) -> Out {
    let node = &nodes[0];
    let started = Instant::now();
    let mut cmd = Command::new("python3");
    cmd.arg(clients_dir().join("security_check.py"))
        .args(["--bootstrap", node.addr("SASL_SSL")])
        .args(["--plaintext", node.addr("PLAINTEXT")])
        .args(["--ssl", node.addr("SSL")])
        .args(["--sasl-plaintext", node.addr("SASL_PLAINTEXT")])
        .arg("--certs")
        .arg(setup.certs())
        .args(extra)
        .arg(mode);
    let shown = format!("{cmd:?}");
    let logs = || nodes.iter().map(|n| n.logs()).collect::<String>();
    let out = run_bounded(&mut cmd, b"", SCRIPT_TIMEOUT).unwrap_or_else(|o| {
        panic!("{shown} still running after {SCRIPT_TIMEOUT:?}\n{}{}", o.text(), logs())
    });
    assert!(
        out.status.success() && out.stdout.contains(&format!("OK {mode}")),
        "{shown} failed ({})\n{}{}",
        out.status,
        out.text(),
        logs()
    );
    for n in nodes.iter_mut() {
        n.assert_alive();
    }
    eprintln!("security_check.py {mode}: passed in {:?}\n{}", started.elapsed(), out.stdout);
    out
}

/// As bob, without each ACL an API needs: Kafka's refusal code and no change; with it: success.
#[test]
fn acls_refuse_each_api_with_kafkas_code_until_granted() {
    let _guard = serialized();
    let setup = Setup::new();
    let mut node = Node::four_listeners(&setup);
    let out = security_check(&setup, &mut [&mut node], "deny-matrix", &[]);
    for line in [
        "produce: refused with 29 without WRITE, nothing written",
        "fetch: refused with 29 without READ, no record returned",
        "group join: refused with 30 without READ on the group, nothing committed",
        "create topics: a PREFIXED CREATE covers sec-pfx-one, not sec-pfy-one",
        "elect leaders without ALTER on the cluster: refused with 31",
    ] {
        assert!(out.stdout.contains(line), "missing `{line}`\n{}", out.text());
    }
}

/// Wrong passwords, unknown mechanisms, requests before authentication, malformed tokens,
/// garbage on the TLS ports and a brute force: refused, and the node keeps serving others.
#[test]
fn authentication_failures_and_garbage_leave_the_node_serving() {
    let _guard = serialized();
    let setup = Setup::new();
    let mut node = Node::four_listeners(&setup);
    let out = security_check(&setup, &mut [&mut node], "auth-failures", &[]);
    assert!(out.stdout.contains("brute force: 200 wrong passwords"), "{}", out.text());
}

/// kafka-python over SSL and mTLS, confluent-kafka with SCRAM and PLAIN over SASL_SSL, kcat over
/// SASL_SSL: round trips; the mTLS principal is the certificate's subject.
#[test]
fn tls_and_sasl_clients_round_trip() {
    let _guard = serialized();
    let setup = Setup::new();
    let mut node = Node::four_listeners(&setup);
    let mut flags = setup.security_flags();
    flags.extend(
        [
            "--ssl-ca",
            &setup.cert("ca.pem"),
            "--ssl-client-auth",
            "required",
            "--allow-everyone-if-no-acl-found",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    // (PLAINTEXT too: the node wants a PLAINTEXT listener for its replica fetchers.)
    let mut mtls = Node::start(&["PLAINTEXT", "SSL", "SASL_PLAINTEXT"], "1", &flags);
    let (ssl, admin) = (mtls.addr("SSL").to_owned(), mtls.addr("SASL_PLAINTEXT").to_owned());
    let out = security_check(
        &setup,
        &mut [&mut node, &mut mtls],
        "tls-clients",
        &["--mtls", &ssl, "--mtls-admin", &admin],
    );
    assert!(out.stdout.contains("kafka-python mTLS as User:CN=alice,O=test"), "{}", out.text());
    assert!(out.stdout.contains("kcat SASL_SSL SCRAM-SHA-512"), "{}", out.text());
    assert!(out.stdout.contains("allow-everyone-if-no-acl-found: alice writes"), "{}", out.text());
}
