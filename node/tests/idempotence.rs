//! The idempotent producer against a real node: retried batches are stored once, also after a
//! SIGKILL and restart, and sequence gaps or stale epochs are refused.

mod common;

use common::{Node, create_topic, fetch, idempotent_batch, init_producer_id, produce};

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
