//! Brokers talking to each other over secured channels: replication over SSL with client
//! certificates required (a follower is known by its certificate) and over SASL_SSL with PLAIN
//! and the ACL authorizer (a follower logs in as the broker user) — with
//! `min.insync.replicas=2`, an acks=all produce succeeds only if the follower fetched over that
//! listener — and a controller quorum on mutual TLS.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, free_port, wait_until};
use common::process::run_ok;

/// A CA and one certificate for every broker (IP SANs 127.0.0.2 to .4), by openssl.
fn make_certs(dir: &Path) {
    let script = r#"set -eu
cd "$1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=replication-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout broker.key -out broker.csr -subj /O=odradek/CN=broker
printf 'subjectAltName=IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4\n' > ext
openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 2 -extfile ext
"#;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, "make-certs"]).arg(dir);
    run_ok(&mut cmd, b"", Duration::from_secs(60));
}

fn odradek(addr: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odradek"));
    cmd.args(args).env("ODRADEK_BROKERS", addr);
    run_ok(&mut cmd, b"", Duration::from_secs(60)).stdout
}

/// Every broker's certificate flags.
fn tls_flags(certs: &Path) -> Vec<String> {
    let file = |name: &str| certs.join(name).to_string_lossy().into_owned();
    vec![
        "--ssl-cert".into(),
        file("broker.pem"),
        "--ssl-key".into(),
        file("broker.key"),
        "--ssl-ca".into(),
        file("ca.pem"),
    ]
}

/// Two brokers with a PLAINTEXT listener for clients and `inter` (`SSL` or `SASL_SSL`) for
/// each other, started and formed.
fn cluster(certs: &Path, inter: &str, extra: Vec<String>) -> Cluster {
    let mut cluster = Cluster::configure_with(2, |_| {
        let mut args = tls_flags(certs);
        args.extend(["--inter-broker-listener-name".into(), inter.into()]);
        args.extend(extra.iter().cloned());
        args
    });
    // Each node: the test's PLAINTEXT address for clients, `inter` for the brokers.
    for node in &mut cluster.nodes {
        let at = node.args.iter().position(|a| a == "--listen").expect("--listen");
        let (host, port) = (node.host.clone(), node.port);
        let secured = free_port(&host);
        node.args[at] = "--listeners".into();
        node.args[at + 1] = format!("PLAINTEXT://{host}:{port},{inter}://{host}:{secured}");
    }
    cluster.start_all();
    cluster.wait_formed();
    cluster
}

/// acks=all with `min.insync.replicas=2`: each batch is acknowledged only once the follower
/// has it; then both partitions' ISR holds both brokers and everything reads back.
fn replicate(cluster: &Cluster) {
    let bootstrap = cluster.addr(1);
    odradek(
        &bootstrap,
        &["topic", "create", "secured", "-p", "2", "-r", "2", "-c", "min.insync.replicas=2"],
    );
    let lines: String = (0..20).map(|i| format!("k{i}:v{i}\n")).collect();
    let mut kcat = Command::new("kcat");
    kcat.args(["-b", &bootstrap, "-P", "-t", "secured", "-K:", "-X", "acks=all"])
        .args(["-X", "message.timeout.ms=30000"]);
    let out = run_ok(&mut kcat, lines.as_bytes(), Duration::from_secs(60));
    assert!(!out.stderr.contains("ERROR"), "kcat: {}", out.text());
    wait_until("both replicas in sync", Duration::from_secs(30), || {
        let d = odradek(&bootstrap, &["topic", "describe", "secured", "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&d).map_err(|e| format!("{e}: {d}"))?;
        let partitions = v["partitions"].as_array().cloned().unwrap_or_default();
        let in_sync = partitions
            .iter()
            .filter(|p| p["isr"].as_array().is_some_and(|isr| isr.len() == 2))
            .count();
        if in_sync == 2 { Ok(d) } else { Err(d) }
    });
    let mut consume = Command::new("kcat");
    consume.args(["-b", &bootstrap, "-C", "-t", "secured", "-o", "beginning", "-e", "-q"]);
    let read = run_ok(&mut consume, b"", Duration::from_secs(60)).stdout;
    assert_eq!(read.lines().count(), 20, "{read}");
    assert!(
        cluster.find_log(|l| l.contains("TLS handshake failed")).is_none(),
        "no broker refused another's TLS"
    );
}

#[test]
fn followers_replicate_over_an_ssl_inter_broker_listener_with_client_certificates() {
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let cluster = cluster(certs.path(), "SSL", vec!["--ssl-client-auth".into(), "required".into()]);
    replicate(&cluster);
}

#[test]
fn followers_log_in_with_sasl_on_a_sasl_ssl_inter_broker_listener() {
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let users = certs.path().join("users");
    std::fs::write(&users, "broker:broker-secret\n").expect("users");
    let extra = vec![
        "--sasl-enabled-mechanisms".into(),
        "PLAIN".into(),
        "--sasl-plain-users".into(),
        users.to_string_lossy().into_owned(),
        "--inter-broker-sasl-user".into(),
        "broker".into(),
        // The authorizer on: the followers' fetches pass as the broker user (a super user:
        // without it they are refused CLUSTER_ACTION and acks=all cannot complete), the test's
        // clients as PLAINTEXT's User:ANONYMOUS.
        "--authorizer".into(),
        "acl".into(),
        "--super-users".into(),
        "User:broker;User:ANONYMOUS".into(),
    ];
    let cluster = cluster(certs.path(), "SASL_SSL", extra);
    replicate(&cluster);
    assert!(
        cluster.find_log(|l| l.contains("SASL authentication failed")).is_none(),
        "every login between brokers succeeded"
    );
}

#[test]
fn a_controller_quorum_on_mutual_tls_forms_and_refuses_plain_peers() {
    use std::io::{Read, Write};
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let mut cluster = Cluster::start_with(3, |_| {
        let mut args = tls_flags(certs.path());
        args.extend(["--controller-security-protocol".into(), "SSL".into()]);
        args
    });
    cluster.wait_formed();
    let bootstrap = cluster.addr(1);
    odradek(&bootstrap, &["topic", "create", "quorum-tls", "-p", "3", "-r", "3"]);
    let listed = odradek(&cluster.addr(3), &["topic", "list"]);
    assert!(listed.contains("quorum-tls"), "every broker follows the metadata: {listed}");
    // A peer without TLS (or with garbage) on the controller port never reaches raft.
    let controller = cluster.node(2).controller_addr();
    let mut s = std::net::TcpStream::connect(&controller).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let _ = s.write_all(b"\x00\x00\x00\x10{\"magic\":\"odradek\"}");
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        assert!(got.len() < 4096, "the controller port kept talking to a plain peer");
    }
    assert!(got.is_empty() || got[0] == 0x15, "only a TLS alert may come back: {got:?}");
    wait_until("the refusal is logged", Duration::from_secs(15), || {
        cluster
            .find_log(|l| l.contains("TLS handshake failed"))
            .map(|_| ())
            .ok_or_else(|| "not yet".to_owned())
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odradek"));
    cmd.args(["cluster", "health"]).env("ODRADEK_BROKERS", &bootstrap);
    run_ok(&mut cmd, b"", Duration::from_secs(60));
}
