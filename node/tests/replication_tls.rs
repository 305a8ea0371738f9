//! Replication over TLS: two brokers whose inter-broker listener is SSL with client
//! certificates required, so every follower fetch is a TLS connection authenticated by the
//! broker's certificate. With `min.insync.replicas=2`, an acks=all produce succeeds only if
//! the follower fetched over it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, free_port, wait_until};
use common::process::run_ok;

/// A CA and one certificate for both brokers (IP SANs 127.0.0.2 and 127.0.0.3), by openssl.
fn make_certs(dir: &Path) {
    let script = r#"set -eu
cd "$1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=replication-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout broker.key -out broker.csr -subj /O=odradek/CN=broker
printf 'subjectAltName=IP:127.0.0.2,IP:127.0.0.3\n' > ext
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

#[test]
fn followers_replicate_over_an_ssl_inter_broker_listener_with_client_certificates() {
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let file = |name: &str| certs.path().join(name).to_string_lossy().into_owned();
    let mut cluster = Cluster::configure_with(2, |_| {
        vec![
            "--ssl-cert".into(),
            file("broker.pem"),
            "--ssl-key".into(),
            file("broker.key"),
            "--ssl-ca".into(),
            file("ca.pem"),
            "--ssl-client-auth".into(),
            "required".into(),
            "--inter-broker-listener-name".into(),
            "SSL".into(),
        ]
    });
    // Each node: the test's PLAINTEXT address for clients, an SSL one for the brokers.
    for node in &mut cluster.nodes {
        let at = node.args.iter().position(|a| a == "--listen").expect("--listen");
        let (host, port) = (node.host.clone(), node.port);
        let ssl = free_port(&host);
        node.args[at] = "--listeners".into();
        node.args[at + 1] = format!("PLAINTEXT://{host}:{port},SSL://{host}:{ssl}");
    }
    cluster.start_all();
    cluster.wait_formed();
    let bootstrap = cluster.addr(1);
    odradek(
        &bootstrap,
        &["topic", "create", "over-tls", "-p", "2", "-r", "2", "-c", "min.insync.replicas=2"],
    );
    // acks=all with min.insync.replicas=2: each batch is acknowledged only once the follower
    // has it, and the follower only fetches over TLS.
    let lines: String = (0..20).map(|i| format!("k{i}:v{i}\n")).collect();
    let mut kcat = Command::new("kcat");
    kcat.args(["-b", &bootstrap, "-P", "-t", "over-tls", "-K:", "-X", "acks=all"])
        .args(["-X", "message.timeout.ms=30000"]);
    let out = run_ok(&mut kcat, lines.as_bytes(), Duration::from_secs(60));
    assert!(!out.stderr.contains("ERROR"), "kcat: {}", out.text());
    let described = wait_until("both replicas in sync", Duration::from_secs(30), || {
        let d = odradek(&bootstrap, &["topic", "describe", "over-tls", "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&d).map_err(|e| format!("{e}: {d}"))?;
        let partitions = v["partitions"].as_array().cloned().unwrap_or_default();
        let in_sync = partitions
            .iter()
            .filter(|p| p["isr"].as_array().is_some_and(|isr| isr.len() == 2))
            .count();
        if in_sync == 2 { Ok(d) } else { Err(d) }
    });
    assert!(described.contains("over-tls"), "{described}");
    let mut consume = Command::new("kcat");
    consume.args(["-b", &bootstrap, "-C", "-t", "over-tls", "-o", "beginning", "-e", "-q"]);
    let read = run_ok(&mut consume, b"", Duration::from_secs(60)).stdout;
    assert_eq!(read.lines().count(), 20, "{read}");
    assert!(
        cluster.find_log(|l| l.contains("TLS handshake failed")).is_none(),
        "no broker refused another's TLS"
    );
}
