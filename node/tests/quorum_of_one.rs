//! A node with no cluster flags is a controller quorum of one: it answers DescribeQuorum, keeps
//! broker ids from being unregistered while live, and upgrades a single node's data directory
//! from before the quorum (`topics.json`, `producer-ids`) in place, losing nothing.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, MetadataRequest, MetadataResponse,
    TopicName, UnregisterBrokerRequest, UnregisterBrokerResponse,
};
use kafka_protocol::protocol::StrBytes;
use odradek_records::Codec;
use uuid::Uuid;

fn topic_id(s: &mut std::net::TcpStream, name: &str) -> Option<(Uuid, usize)> {
    let resp: MetadataResponse = call(s, 12, &MetadataRequest::default().with_topics(None));
    resp.topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
        .map(|t| (t.topic_id, t.partitions.len()))
}

#[test]
fn a_single_node_data_directory_is_upgraded_in_place() {
    let mut node = Node::start();
    let mut s = node.connect();
    create_topic_with(&mut s, "kept", 2, &[("retention.ms", "86400000")]);
    for p in 0..2 {
        let (err, _) = produce_to(&mut s, 9, "kept", p, batch(Codec::None, &[b"a", b"b", b"c"]));
        assert_eq!(err, 0);
    }
    let (id, partitions) = topic_id(&mut s, "kept").expect("listed");
    assert_eq!(partitions, 2);
    drop(s);
    node.signal("-TERM");
    assert!(node.wait_exit(Duration::from_secs(20)).success());

    // What a node from before the quorum left: its catalogue and producer-id reservation,
    // the partitions' directories, no controller directory.
    let dir = node.data_dir();
    std::fs::remove_dir_all(dir.join("controller")).expect("remove the controller's files");
    let catalogue = format!(
        r#"{{"topics":{{"kept":{{"name":"kept","id":"{id}","shards":[0,1],"configs":{{"retention.ms":"86400000"}}}}}}}}"#
    );
    std::fs::write(dir.join("topics.json"), catalogue).expect("write topics.json");
    std::fs::write(dir.join("producer-ids"), "5000").expect("write producer-ids");

    node.restart();
    let mut s = node.connect();
    assert_eq!(topic_id(&mut s, "kept"), Some((id, 2)), "same id and partitions");
    for p in 0..2 {
        let got = fetch_many(&mut s, "kept", &[(p, 0)], 1 << 20, 1 << 20);
        assert_eq!((got[0].1, got[0].2), (0, 3), "partition {p}: its records are all there");
    }
    let (err, producer_id, _) = init_producer_id(&mut s);
    assert_eq!(err, 0);
    assert!(producer_id >= 5000, "ids continue above the old reservation: {producer_id}");
    assert!(!dir.join("topics.json").exists(), "the old catalogue is retired");
    assert!(dir.join("topics.json.upgraded").exists(), "and kept as a backup");

    // The quorum now holds it: another restart needs no old files.
    drop(s);
    node.signal("-TERM");
    assert!(node.wait_exit(Duration::from_secs(20)).success());
    node.restart();
    let mut s = node.connect();
    assert_eq!(topic_id(&mut s, "kept"), Some((id, 2)));
    let (err, again, _) = init_producer_id(&mut s);
    assert_eq!(err, 0);
    assert!(again > producer_id, "unique across restarts: {again} after {producer_id}");
}

#[test]
fn describe_quorum_and_unregister_broker_on_a_quorum_of_one() {
    let node = Node::start();
    let mut s = node.connect();
    let req = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default()]),
    ]);
    for version in [0, 2] {
        let resp: DescribeQuorumResponse = call(&mut s, version, &req);
        assert_eq!(resp.error_code, 0);
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_id.0), (0, 0), "v{version}: node 0 leads");
        assert!(p.leader_epoch >= 1 && p.high_watermark >= 1, "v{version}: {p:?}");
        let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        assert_eq!(voters, vec![0]);
        assert!(p.current_voters[0].log_end_offset >= p.high_watermark);
        if version >= 2 {
            assert_eq!(resp.nodes.len(), 1);
        }
    }
    let unregister = |s: &mut std::net::TcpStream, id| {
        let req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        let resp: UnregisterBrokerResponse = call(s, 0, &req);
        resp.error_code
    };
    assert_eq!(unregister(&mut s, 0), 42, "a live broker: INVALID_REQUEST");
    assert_eq!(unregister(&mut s, 9), 102, "an unknown id: BROKER_ID_NOT_REGISTERED");
    let resp: MetadataResponse = call(&mut s, 12, &MetadataRequest::default().with_topics(None));
    assert_eq!(resp.brokers.len(), 1, "still registered");
}
