//! [`Cluster`] against two fake brokers on loopback (a `TcpListener` each, answering
//! ApiVersions, Metadata and Produce from a script): a partition whose leader moves is followed
//! through a Metadata refresh or through the answer's KIP-951 hints, and a partition that never
//! finds its leader fails after the retry bound with its name in the error.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use odradek_client::ClientError;
use odradek_client::cluster::Cluster;
use odradek_client::routing::{NOT_LEADER_OR_FOLLOWER, Retry};

const TOPIC: &str = "t";

/// What the fake brokers answer, and what they were asked.
#[derive(Default)]
struct Script {
    ports: [AtomicUsize; 2],
    /// Metadata names broker 2 (not 1) as the leader once this is set.
    moved: AtomicBool,
    /// Broker 1 answers Produce with NOT_LEADER_OR_FOLLOWER; with hints, naming broker 2.
    hints: bool,
    /// Broker 2 also refuses (the leader is never found).
    nobody_leads: bool,
    metadata_calls: AtomicUsize,
    produce_calls: [AtomicUsize; 2],
}

impl Script {
    fn port(&self, node: i32) -> i32 {
        self.ports[(node - 1) as usize].load(Ordering::Relaxed) as i32
    }

    fn metadata(&self) -> MetadataResponse {
        let leader = if self.moved.load(Ordering::Relaxed) { 2 } else { 1 };
        let brokers = (1..=2)
            .map(|n| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(n))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(self.port(n))
            })
            .collect();
        let p = MetadataResponsePartition::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(leader);
        let t = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))
            .with_partitions(vec![p]);
        MetadataResponse::default().with_brokers(brokers).with_topics(vec![t])
    }

    fn produce(&self, node: i32) -> ProduceResponse {
        self.produce_calls[(node - 1) as usize].fetch_add(1, Ordering::Relaxed);
        let refuse = node == 1 || self.nobody_leads;
        let mut p = PartitionProduceResponse::default().with_index(0);
        let mut endpoints = Vec::new();
        if refuse {
            self.moved.store(!self.hints, Ordering::Relaxed);
            p = p.with_error_code(NOT_LEADER_OR_FOLLOWER);
            if self.hints && !self.nobody_leads {
                let l =
                    LeaderIdAndEpoch::default().with_leader_id(BrokerId(2)).with_leader_epoch(2);
                p = p.with_current_leader(l);
                endpoints.push(
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(2))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(self.port(2)),
                );
            }
        } else {
            p = p.with_base_offset(42);
        }
        let t = TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_responses(vec![p]);
        ProduceResponse::default().with_responses(vec![t]).with_node_endpoints(endpoints)
    }
}

fn api_versions() -> ApiVersionsResponse {
    let key = |k: ApiKey, min, max| {
        ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max)
    };
    ApiVersionsResponse::default().with_api_keys(vec![
        key(ApiKey::ApiVersions, 0, 3),
        key(ApiKey::Metadata, 0, 12),
        key(ApiKey::Produce, 3, 10),
    ])
}

/// Answers one connection until it closes.
fn serve(mut s: TcpStream, node: i32, script: &Script) -> anyhow::Result<()> {
    loop {
        let mut prefix = [0u8; 4];
        if s.read_exact(&mut prefix).is_err() {
            return Ok(()); // the client closed
        }
        let mut body = vec![0u8; i32::from_be_bytes(prefix) as usize];
        s.read_exact(&mut body)?;
        let mut frame = Bytes::from(body);
        let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
            .map_err(|()| anyhow::anyhow!("unknown api key"))?;
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let header = RequestHeader::decode(&mut frame, key.request_header_version(version))?;
        let mut out = BytesMut::new();
        out.extend_from_slice(&[0; 4]);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(version))?;
        match key {
            ApiKey::ApiVersions => api_versions().encode(&mut out, version)?,
            ApiKey::Metadata => {
                script.metadata_calls.fetch_add(1, Ordering::Relaxed);
                script.metadata().encode(&mut out, version)?
            }
            ApiKey::Produce => script.produce(node).encode(&mut out, version)?,
            other => anyhow::bail!("unexpected {other:?}"),
        }
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        s.write_all(&out)?;
    }
}

/// Starts the two fake brokers; returns broker 1's address (the bootstrap).
fn start(script: &Arc<Script>) -> String {
    let mut first = String::new();
    for node in 1..=2 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        script.ports[(node - 1) as usize].store(addr.port() as usize, Ordering::Relaxed);
        if node == 1 {
            first = addr.to_string();
        }
        let script = script.clone();
        // The listener threads end with the test process.
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let script = script.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(s, node, &script) {
                        eprintln!("fake broker {node}: {e:#}");
                    }
                });
            }
        });
    }
    first
}

fn quick() -> Retry {
    Retry {
        attempts: 5,
        backoff: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn not_leader_refreshes_metadata_and_retries_at_the_new_leader() {
    let script = Arc::new(Script::default());
    let boot = start(&script);
    let mut c = Cluster::new(&boot, "test", TOPIC, quick());
    let offset = c.produce(0, 1, 1000, Bytes::from_static(b"batch")).expect("produced");
    assert_eq!(offset, 42);
    assert_eq!(script.produce_calls[0].load(Ordering::Relaxed), 1, "refused once by broker 1");
    assert_eq!(script.produce_calls[1].load(Ordering::Relaxed), 1, "then taken by broker 2");
    assert_eq!(script.metadata_calls.load(Ordering::Relaxed), 2, "first routes, then a refresh");
    assert_eq!(c.routes().addr_of(0), Some(format!("127.0.0.1:{}", script.port(2)).as_str()));
    // The leader is known now: the next batch goes straight to it.
    assert_eq!(c.produce(0, 1, 1000, Bytes::from_static(b"more")).expect("produced"), 42);
    assert_eq!(script.produce_calls[0].load(Ordering::Relaxed), 1);
    assert_eq!(script.metadata_calls.load(Ordering::Relaxed), 2);
}

#[test]
fn current_leader_hints_reroute_without_asking_metadata_again() {
    let script = Arc::new(Script { hints: true, ..Script::default() });
    let boot = start(&script);
    // A backoff long enough to see: a hinted retry does not wait for it.
    let mut c =
        Cluster::new(&boot, "test", TOPIC, Retry { backoff: Duration::from_secs(5), ..quick() });
    let t0 = std::time::Instant::now();
    assert_eq!(c.produce(0, 1, 1000, Bytes::from_static(b"batch")).expect("produced"), 42);
    assert!(t0.elapsed() < Duration::from_secs(2), "no backoff: {:?}", t0.elapsed());
    assert_eq!(script.produce_calls[1].load(Ordering::Relaxed), 1, "broker 2 took it");
    assert_eq!(script.metadata_calls.load(Ordering::Relaxed), 1, "only the first Metadata");
    assert_eq!(c.routes().leader_of(0).map(|l| (l.node_id, l.epoch)), Some((2, 2)));
}

#[test]
fn a_leader_never_found_fails_at_the_bound_naming_the_partition() {
    let script = Arc::new(Script { nobody_leads: true, ..Script::default() });
    let boot = start(&script);
    let mut c = Cluster::new(&boot, "test", TOPIC, quick());
    let err = c.produce(0, 1, 1000, Bytes::from_static(b"batch")).expect_err("nobody leads");
    assert!(matches!(err, ClientError::Exhausted { attempts: 5, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("produce to t/0") && text.contains("error code 6"), "{text}");
    let tries: usize = script.produce_calls.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    assert_eq!(tries, 5);
}
