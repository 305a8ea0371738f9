//! ListOffsets' special timestamps against a real node.

mod common;

use common::{Node, batch_at, create_topic, list_offset, produce};
use odradek_records::Codec;

const T0: i64 = 1_700_000_000_000;

#[test]
fn list_offsets_answers_every_special_timestamp() {
    let mut node = Node::start();
    let mut s = node.connect();
    create_topic(&mut s, "times", &[]);
    assert_eq!(list_offset(&mut s, "times", -3), (0, -1, -1), "max timestamp of an empty log");
    // Offsets 0-1 at T0, 2-4 at T0+5000 (the largest, in a compressed batch), 5 at T0+1000.
    let batches = [
        batch_at(Codec::None, T0, &[b"a", b"b"]),
        batch_at(Codec::Zstd, T0 + 5000, &[b"c", b"d", b"e"]),
        batch_at(Codec::None, T0 + 1000, &[b"f"]),
    ];
    for b in batches {
        assert_eq!(produce(&mut s, 9, "times", b).0, 0);
    }
    assert_eq!(list_offset(&mut s, "times", -1), (0, -1, 6), "latest");
    assert_eq!(list_offset(&mut s, "times", -2), (0, -1, 0), "earliest");
    assert_eq!(list_offset(&mut s, "times", -4), (0, -1, 0), "earliest local");
    assert_eq!(list_offset(&mut s, "times", -3), (0, T0 + 5000, 2), "first record with the max");
    assert_eq!(list_offset(&mut s, "times", T0 + 500), (0, T0 + 5000, 2), "first at or after");
    assert_eq!(list_offset(&mut s, "times", T0 + 6000), (0, -1, -1), "after every record");
    assert_eq!(list_offset(&mut s, "times", -7).0, 42, "INVALID_REQUEST");
    node.assert_alive();
}
