//! DescribeLogDirs against a real node: the data directory, partition sizes that grow by what
//! is produced, and (v4) the filesystem's space.

mod common;

use std::collections::BTreeMap;

use common::{Node, batch, call, create_topic_with, produce_to};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use odradek_records::Codec;

fn topic(name: &str, partitions: Vec<i32>) -> DescribableLogDirTopic {
    DescribableLogDirTopic::default()
        .with_topic(TopicName(StrBytes::from_string(name.to_owned())))
        .with_partitions(partitions)
}

/// (topic, partition) → (size, lag), from the response's one directory.
fn sizes(resp: &DescribeLogDirsResponse) -> BTreeMap<(String, i32), (i64, i64)> {
    assert_eq!(resp.results.len(), 1, "one log dir");
    let dir = &resp.results[0];
    assert_eq!(dir.error_code, 0);
    let mut out = BTreeMap::new();
    for t in &dir.topics {
        for p in &t.partitions {
            assert!(!p.is_future_key);
            out.insert((t.name.0.to_string(), p.partition_index), (p.partition_size, p.offset_lag));
        }
    }
    out
}

#[test]
fn describe_log_dirs_reports_the_data_dir_and_sizes_that_grow() {
    let mut node = Node::start();
    let mut s = node.connect();
    // Three partitions over the node's two shards: answers come from both owners.
    create_topic_with(&mut s, "dirs", 3, &[]);
    let all = || DescribeLogDirsRequest::default().with_topics(None);
    let before = sizes(&call(&mut s, 4, &all()));
    for p in 0..3 {
        assert_eq!(before.get(&("dirs".into(), p)).map(|(_, lag)| *lag), Some(0), "{before:?}");
    }

    let value = vec![7u8; 10_000];
    let records = batch(Codec::None, &[&value, &value]);
    let batch_len = records.len() as i64;
    assert_eq!(produce_to(&mut s, 9, "dirs", 1, records).0, 0);

    for version in 1..=4 {
        let resp: DescribeLogDirsResponse = call(&mut s, version, &all());
        let dir = &resp.results[0];
        let want = std::fs::canonicalize(node.data_dir()).expect("the data dir exists");
        assert_eq!(dir.log_dir.to_string(), want.to_string_lossy(), "v{version}");
        let after = sizes(&resp);
        let grew = after[&("dirs".into(), 1)].0 - before[&("dirs".into(), 1)].0;
        assert!(grew >= batch_len, "v{version}: partition 1 grew {grew} B, produced {batch_len}");
        assert_eq!(after[&("dirs".into(), 0)], before[&("dirs".into(), 0)], "v{version}");
        if version >= 4 {
            assert!(dir.total_bytes > 0, "{dir:?}");
            assert!((0..=dir.total_bytes).contains(&dir.usable_bytes), "{dir:?}");
        } else {
            assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1), "v{version}: not sent");
        }
    }

    // Asked by name: only the partitions asked for; an unknown topic or partition is left
    // out, as Kafka leaves out what a directory does not hold.
    let req = DescribeLogDirsRequest::default()
        .with_topics(Some(vec![topic("dirs", vec![1, 7]), topic("no-such-topic", vec![0])]));
    let named = sizes(&call(&mut s, 2, &req));
    assert_eq!(named.keys().cloned().collect::<Vec<_>>(), vec![("dirs".to_owned(), 1)]);
    node.assert_alive();
}
