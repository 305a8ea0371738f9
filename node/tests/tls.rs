//! TLS listeners against a real node: the certificate is reloaded without a restart when its
//! files change, a file that does not load leaves the old certificate in place, and a
//! plaintext client (or garbage) on the TLS port is refused while the node keeps serving.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::free_port;
use common::process::{Served, run_ok};

struct Node {
    served: Served,
    plain: String,
    ssl: String,
}

fn make_certs(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/make_test_certs.sh");
    run_ok(Command::new("sh").arg(script).arg(dir), b"", Duration::from_secs(60));
}

/// The PEM certificate the node's TLS listener presents (Python's ssl module, no verification).
fn served_cert(addr: &str) -> Option<String> {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let code = format!("import ssl; print(ssl.get_server_certificate(('{host}', {port})))");
    let out = Command::new("python3").args(["-c", &code]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()
}

fn start(certs: &Path) -> Node {
    let (plain, ssl) = (
        format!("127.0.0.1:{}", free_port("127.0.0.1")),
        format!("127.0.0.1:{}", free_port("127.0.0.1")),
    );
    let served = Served::start(&[
        "--smp".into(),
        "1".into(),
        "--admin-listen".into(),
        "none".into(),
        "--listeners".into(),
        format!("PLAINTEXT://{plain},SSL://{ssl}"),
        "--ssl-cert".into(),
        certs.join("server.pem").to_string_lossy().into_owned(),
        "--ssl-key".into(),
        certs.join("server.key").to_string_lossy().into_owned(),
    ]);
    let ready = &served.ready;
    assert!(ready.contains(&format!("SSL://{ssl}")), "the ready line names the listeners: {ready}");
    Node { served, plain, ssl }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_changed_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    let first = tempfile::tempdir().expect("tempdir");
    let second = tempfile::tempdir().expect("tempdir");
    make_certs(first.path());
    make_certs(second.path());
    // The node reads its certificate from `live`, which starts as a copy of the first set.
    let live = tempfile::tempdir().expect("tempdir");
    for f in ["server.pem", "server.key"] {
        std::fs::copy(first.path().join(f), live.path().join(f)).expect("copy");
    }
    let node = start(live.path());
    let old = pem_body(&std::fs::read_to_string(first.path().join("server.pem")).expect("pem"));
    let new = pem_body(&std::fs::read_to_string(second.path().join("server.pem")).expect("pem"));
    assert_ne!(old, new, "two certificate sets differ");
    let served = served_cert(&node.ssl).map(|p| pem_body(&p));
    assert_eq!(served.as_deref(), Some(old.as_str()), "the first certificate is served");

    // A certificate that does not load: logged, and the old one stays.
    std::fs::write(live.path().join("server.pem"), "not a certificate\n").expect("write");
    wait_for("the refused reload is logged", Duration::from_secs(30), || {
        node.served.logs().contains("do not load")
    });
    let served = served_cert(&node.ssl).map(|p| pem_body(&p));
    assert_eq!(served.as_deref(), Some(old.as_str()), "the old certificate stays");

    // The key first, then the certificate: the pair is complete when the node next looks.
    std::fs::copy(second.path().join("server.key"), live.path().join("server.key")).expect("key");
    std::fs::copy(second.path().join("server.pem"), live.path().join("server.pem")).expect("pem");
    wait_for("the new certificate is served", Duration::from_secs(30), || {
        served_cert(&node.ssl).map(|p| pem_body(&p)).as_deref() == Some(new.as_str())
    });

    // Plaintext Kafka and garbage on the TLS port: the connection closes, nothing is answered,
    // and the node keeps serving both listeners.
    for bytes in [
        &b"\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00\xff\xff"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3][..],
    ] {
        let mut s = std::net::TcpStream::connect(&node.ssl).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        let _ = s.write_all(bytes);
        let mut buf = [0u8; 64];
        // A TLS alert at most, then the close; never a Kafka answer.
        let mut got = Vec::new();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            assert!(got.len() < 1024, "the TLS port kept talking to garbage");
        }
        assert!(got.is_empty() || got[0] == 0x15, "only a TLS alert may come back: {got:?}");
    }
    assert!(served_cert(&node.ssl).is_some(), "TLS still served");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odradek"));
    cmd.args(["cluster", "info"]).env("ODRADEK_BROKERS", &node.plain);
    let info = run_ok(&mut cmd, b"", Duration::from_secs(30)).stdout;
    assert!(info.contains("CLUSTER"), "{info}");
    let log = node.served.logs();
    assert!(log.contains("TLS handshake failed"), "the refusals are logged:\n{log}");
}
