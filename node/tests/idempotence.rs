//! The idempotent producer against a real node: retried batches are stored once, also after a
//! SIGKILL and restart, and sequence gaps or stale epochs are refused.

mod common;

use common::{
    Node, create_topic, fetch, idempotent_batch, init_producer_id, init_producer_id_for, produce,
};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

#[test]
fn retries_are_stored_once_even_across_a_sigkill() {
    let mut node = Node::start();
    let mut s = node.connect();
    create_topic(&mut s, "idem", &[]);
    let (err, pid, epoch) = init_producer_id(&mut s);
    assert_eq!((err, epoch), (0, 0));
    let (_, other, _) = init_producer_id(&mut s);
    assert_ne!(pid, other, "every InitProducerId gets a new id");
    // As Kafka: an empty transactional id is an invalid request (not "no transactions"); a
    // transactional id gets its producer id from its coordinator (`transactions.rs`).
    assert_eq!(init_producer_id_for(&mut s, Some("")).0, 42, "INVALID_REQUEST");
    assert_eq!(init_producer_id_for(&mut s, Some("tx")).0, 0, "a transactional producer");

    let first = idempotent_batch(pid, 0, 0, &[b"a", b"b", b"c"]);
    let second = idempotent_batch(pid, 0, 3, &[b"d", b"e"]);
    assert_eq!(produce(&mut s, 9, "idem", first.clone()), (0, 0));
    assert_eq!(produce(&mut s, 9, "idem", second.clone()), (0, 3));
    assert_eq!(produce(&mut s, 9, "idem", first.clone()), (0, 0), "a retry: the first offsets");
    assert_eq!(produce(&mut s, 9, "idem", second.clone()), (0, 3), "a retry: the first offsets");
    assert_eq!(fetch(&mut s, "idem", 0).1, 5, "nothing written twice");

    let gap = idempotent_batch(pid, 0, 9, &[b"x"]);
    assert_eq!(produce(&mut s, 9, "idem", gap).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let stale = idempotent_batch(pid, -1, 5, &[b"x"]);
    assert_eq!(produce(&mut s, 9, "idem", stale).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(fetch(&mut s, "idem", 0).1, 5, "refused batches are not written");

    // After a SIGKILL the producer state is rebuilt from the log: retries are still known.
    node.kill_and_restart();
    let mut s = node.connect();
    assert_eq!(produce(&mut s, 9, "idem", second.clone()), (0, 3), "a retry after the crash");
    assert_eq!(produce(&mut s, 9, "idem", first), (0, 0));
    let third = idempotent_batch(pid, 0, 5, &[b"f"]);
    assert_eq!(produce(&mut s, 9, "idem", third), (0, 5), "the sequence goes on");
    // Ids are never reused after a restart.
    let (_, after, _) = init_producer_id(&mut s);
    assert!(after > other, "{after} after {other}");
    node.assert_alive();
}

/// Runs `tests/clients/idempotent_retries.py` through its cutting proxy against a node that
/// advertises the proxy.
fn retried_through_a_cutting_proxy(client: &str, extra: &[&str]) {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let advertise = format!("127.0.0.1:{proxy}");
    let node = Node::start_args(&["--advertise", &advertise]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients/idempotent_retries.py");
    let out = std::process::Command::new("timeout")
        .args(["-k", "5", "120", "python3"])
        .arg(script)
        .args(["--listen", &proxy.to_string(), "--node", &node.addr(), "--client", client])
        .args(extra)
        .output()
        .expect("run the script");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("OK idempotent"), "{client}: {text}");
}

#[test]
fn confluent_retries_after_cut_connections_store_every_record_once() {
    retried_through_a_cutting_proxy("confluent", &[]);
}

#[test]
fn kafka_python_retries_after_cut_connections_store_every_record_once() {
    retried_through_a_cutting_proxy("kafka-python", &["--every", "2", "--cuts", "5"]);
}
