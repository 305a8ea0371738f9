//! Fetch byte limits across shards (KIP-74), against a real node with two shards: partitions
//! are read by their owners at once and the response is cut in request order, keeping the
//! first partition with data whole.

mod common;

use common::{Node, batch, create_topic_with, fetch_many, produce_to};
use odradek_records::Codec;

/// Bytes of the one stored batch each partition gets.
fn fill(s: &mut std::net::TcpStream, topic: &str, partitions: i32) -> usize {
    let value = vec![b'x'; 100_000];
    let b = batch(Codec::None, &[&value]);
    for p in 0..partitions {
        assert_eq!(produce_to(s, 9, topic, p, b.clone()), (0, 0), "partition {p}");
    }
    b.len()
}

#[test]
fn fetch_limits_follow_kip_74_across_shards() {
    let mut node = Node::start();
    let mut s = node.connect();
    // Four partitions: two owned by each shard, whichever shard this connection landed on.
    create_topic_with(&mut s, "limits", 4, &[]);
    let size = fill(&mut s, "limits", 4) as i32;
    let all: Vec<(i32, i64)> = (0..4).map(|p| (p, 0)).collect();
    let lens = |got: Vec<(i32, i16, i64, usize)>| -> Vec<usize> {
        assert!(got.iter().all(|g| g.1 == 0 && g.2 == 1), "{got:?}");
        got.iter().map(|g| g.3).collect()
    };
    let size_u = size as usize;
    // Room for everything.
    assert_eq!(lens(fetch_many(&mut s, "limits", &all, 10 * size, size)), vec![size_u; 4]);
    // Room for two and a half batches: the first two, nothing of the third.
    let two_and_half = 2 * size + size / 2;
    assert_eq!(
        lens(fetch_many(&mut s, "limits", &all, two_and_half, size)),
        vec![size_u, size_u, 0, 0]
    );
    // A response limit below one batch: the first partition's batch anyway, nothing else.
    assert_eq!(lens(fetch_many(&mut s, "limits", &all, 10, size)), vec![size_u, 0, 0, 0]);
    // A partition limit below one batch: only the first partition may exceed it.
    assert_eq!(lens(fetch_many(&mut s, "limits", &all, 10 * size, 10)), vec![size_u, 0, 0, 0]);
    // Request order decides, not partition number.
    let reversed: Vec<(i32, i64)> = all.iter().rev().copied().collect();
    let got = fetch_many(&mut s, "limits", &reversed, size + 1, size);
    assert_eq!(
        got.iter().map(|g| (g.0, g.3)).collect::<Vec<_>>(),
        vec![(3, size_u), (2, 0), (1, 0), (0, 0)]
    );
    // A partition with nothing to give does not count as "first".
    let mixed = [(0, 1), (1, 0), (2, 0)];
    let got = fetch_many(&mut s, "limits", &mixed, 10, size);
    assert_eq!(got.iter().map(|g| g.3).collect::<Vec<_>>(), vec![0, size_u, 0]);
    node.assert_alive();
}
