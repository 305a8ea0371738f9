//! Bad input against a real node: every refusal carries the right Kafka error code, nothing
//! of a refused request reaches a log, malformed frames close only their own connection, and
//! the node keeps serving real clients throughout.
//!
//! Requests are encoded here with kafka-protocol's client side (the point is to send what no
//! well-behaved client would); what the node stored is then checked through a real client.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use common::{Node, batch, create_topic, fetch, produce};
use odradek_records::Codec;

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

#[test]
fn refused_batches_get_their_error_code_and_write_nothing() {
    let mut node = Node::start();
    let mut s = node.connect();
    create_topic(&mut s, "bad", &[("max.message.bytes", "2000")]);

    let good = batch(Codec::None, &[b"one", b"two"]);
    let mut flipped = BytesMut::from(&good[..]);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    assert_eq!(produce(&mut s, 9, "bad", flipped.freeze()).0, CORRUPT_MESSAGE, "a wrong CRC");

    let mut short = BytesMut::from(&good[..]);
    short.truncate(good.len() - 3);
    // Kafka reads no complete batch out of it, so it is not "exactly one batch" either.
    assert_eq!(produce(&mut s, 9, "bad", short.freeze()).0, INVALID_RECORD, "a truncated batch");

    let mut two = BytesMut::from(&good[..]);
    two.extend_from_slice(&good);
    assert_eq!(
        produce(&mut s, 9, "bad", two.freeze()).0,
        INVALID_RECORD,
        "two batches in one partition"
    );

    let zstd = batch(Codec::Zstd, &[b"z"]);
    assert_eq!(
        produce(&mut s, 6, "bad", zstd.clone()).0,
        UNSUPPORTED_COMPRESSION_TYPE,
        "zstd before v7"
    );

    let big = vec![7u8; 4000];
    assert_eq!(produce(&mut s, 9, "bad", batch(Codec::None, &[&big])).0, MESSAGE_TOO_LARGE);

    assert_eq!(produce(&mut s, 9, "no-such-topic-", good.clone()).0, UNKNOWN_TOPIC_OR_PARTITION);

    // Nothing of the refused requests was written: the first good batch gets offset 0.
    assert_eq!(fetch(&mut s, "bad", 0), (0, 0, 0), "empty log");
    assert_eq!(produce(&mut s, 9, "bad", good.clone()), (0, 0));
    assert_eq!(produce(&mut s, 7, "bad", zstd), (0, 2), "zstd from v7 is fine");
    let (err, hw, bytes) = fetch(&mut s, "bad", 0);
    assert_eq!((err, hw), (0, 3));
    assert!(bytes > 0);
    assert_eq!(fetch(&mut s, "bad", 4).0, OFFSET_OUT_OF_RANGE, "past the end");
    assert_eq!(fetch(&mut s, "bad", 3), (0, 3, 0), "at the end: nothing yet");
    node.assert_alive();
}

/// Random frames with valid headers of served APIs and random bodies: each is answered or its
/// connection closed; the node stays up and serves a real client afterwards.
#[test]
fn random_bodies_never_take_the_node_down() {
    let mut node = Node::start();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let apis: [(i16, i16); 28] = [
        (0, 11),
        (11, 9),
        (12, 4),
        (13, 5),
        (14, 5),
        (15, 6),
        (16, 5),
        (42, 2),
        (47, 0),
        (1, 16),
        (8, 9),
        (9, 9),
        (10, 6),
        (22, 5),
        (2, 8),
        (3, 12),
        (18, 3),
        (19, 7),
        (20, 6),
        (21, 2),
        (23, 4),
        (32, 4),
        (37, 3),
        (44, 1),
        (60, 1),
        (43, 2),
        (45, 0),
        (46, 0),
    ];
    for i in 0..300i32 {
        let (api, max_version) = apis[(next() % apis.len() as u64) as usize];
        let version = (next() % (max_version as u64 + 1)) as i16;
        let body_len = (next() % 300) as usize;
        let mut frame = Vec::with_capacity(14 + body_len);
        frame.extend_from_slice(&api.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&i.to_be_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes());
        frame.extend((0..body_len).map(|_| next() as u8));
        let mut s = node.connect();
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let mut wire = (frame.len() as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&frame);
        // The node may close before reading everything; either outcome is fine.
        let _ = s.write_all(&wire);
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
    }
    node.assert_alive();
    let out = Command::new("kcat")
        .args(["-b", &node.addr(), "-t", "after-fuzz", "-P", "-m", "15"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(b"still here\n")?;
            c.wait_with_output()
        })
        .expect("kcat produce");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("kcat")
        .args(["-b", &node.addr(), "-t", "after-fuzz", "-C", "-e", "-m", "15"])
        .output()
        .expect("kcat consume");
    assert!(String::from_utf8_lossy(&out.stdout).contains("still here"));
    node.assert_alive();
}
