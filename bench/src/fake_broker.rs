//! Two fake brokers on loopback for the load generator's tests: they answer ApiVersions,
//! Metadata, ListOffsets, Produce and Fetch for one topic whose partitions broker 1 leads at
//! first. The first Produce or Fetch broker 1 receives makes broker 2 the leader (in Metadata)
//! and is refused with NOT_LEADER_OR_FOLLOWER, as is every later one it receives; broker 2
//! takes them all (unless `nobody_leads`). Fetches answer `records` records (one batch) from
//! offset 0.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use anyhow::{Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use odradek_client::routing::NOT_LEADER_OR_FOLLOWER;
use odradek_records::{BatchBuilder, Codec, ProducerStamp};

/// The fake cluster's state, and what it was asked.
pub struct Fake {
    pub topic: String,
    pub partitions: i32,
    /// Records each partition holds for Fetch (and ListOffsets' latest).
    pub records: i64,
    batch: Bytes,
    ports: [AtomicUsize; 2],
    moved: AtomicBool,
    /// Produce and Fetch requests broker 1 refused.
    pub refused: AtomicUsize,
    /// Records broker 2 accepted.
    pub accepted: AtomicU64,
    /// Broker 2 refuses too: no broker leads.
    pub nobody_leads: AtomicBool,
}

impl Fake {
    /// Starts both brokers; returns the state and broker 1's address (the bootstrap).
    pub fn start(topic: &str, partitions: i32, records: i64) -> (Arc<Fake>, String) {
        let mut b = BatchBuilder::new(Codec::None);
        for i in 0..records {
            b.push(0, None, &i.to_be_bytes()).expect("push");
        }
        let mut out = Vec::new();
        b.finish(ProducerStamp::NONE, &mut out).expect("finish");
        let fake = Arc::new(Fake {
            topic: topic.to_owned(),
            partitions,
            records,
            batch: Bytes::from(out),
            ports: [AtomicUsize::new(0), AtomicUsize::new(0)],
            moved: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            nobody_leads: AtomicBool::new(false),
        });
        let mut first = String::new();
        for node in 1..=2 {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = l.local_addr().expect("addr");
            fake.ports[node as usize - 1].store(usize::from(addr.port()), Ordering::Relaxed);
            if node == 1 {
                first = addr.to_string();
            }
            let fake = fake.clone();
            // The listener threads end with the test process.
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    let fake = fake.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = fake.serve(s, node) {
                            eprintln!("fake broker {node}: {e:#}");
                        }
                    });
                }
            });
        }
        (fake, first)
    }

    fn name(&self) -> TopicName {
        TopicName(StrBytes::from(self.topic.clone()))
    }

    fn metadata(&self) -> MetadataResponse {
        let leader = if self.moved.load(Ordering::Relaxed) { 2 } else { 1 };
        let brokers = (1..=2)
            .map(|n: i32| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(n))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(self.ports[n as usize - 1].load(Ordering::Relaxed) as i32)
            })
            .collect();
        let parts = (0..self.partitions)
            .map(|p| {
                MetadataResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(leader)
            })
            .collect();
        let t =
            MetadataResponseTopic::default().with_name(Some(self.name())).with_partitions(parts);
        MetadataResponse::default().with_brokers(brokers).with_topics(vec![t])
    }

    /// True (and the leader moves to broker 2) if `node` refuses a Produce or Fetch.
    fn refuses(&self, node: i32) -> bool {
        let refuse = node == 1 || self.nobody_leads.load(Ordering::Relaxed);
        if refuse {
            self.moved.store(true, Ordering::Relaxed);
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        refuse
    }

    fn produce(&self, node: i32, req: &ProduceRequest) -> ProduceResponse {
        let refuse = self.refuses(node);
        let mut parts = Vec::new();
        for t in &req.topic_data {
            for p in &t.partition_data {
                let mut r = PartitionProduceResponse::default().with_index(p.index);
                if refuse {
                    r = r.with_error_code(NOT_LEADER_OR_FOLLOWER);
                } else {
                    // A v2 batch's record count is its last 4 header bytes (offset 57).
                    let n =
                        p.records.as_ref().and_then(|b| b.get(57..61)).map_or(0, |c| {
                            i32::from_be_bytes([c[0], c[1], c[2], c[3]]).max(0) as u64
                        });
                    self.accepted.fetch_add(n, Ordering::Relaxed);
                }
                parts.push(r);
            }
        }
        let t =
            TopicProduceResponse::default().with_name(self.name()).with_partition_responses(parts);
        ProduceResponse::default().with_responses(vec![t])
    }

    fn fetch(&self, node: i32, req: &FetchRequest) -> FetchResponse {
        let refuse = self.refuses(node);
        let mut parts = Vec::new();
        for t in &req.topics {
            for p in &t.partitions {
                let mut d = PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_high_watermark(self.records);
                if refuse {
                    d = d.with_error_code(NOT_LEADER_OR_FOLLOWER);
                } else if p.fetch_offset < self.records {
                    d = d.with_records(Some(self.batch.clone()));
                }
                parts.push(d);
            }
        }
        let t = FetchableTopicResponse::default().with_topic(self.name()).with_partitions(parts);
        FetchResponse::default().with_responses(vec![t])
    }

    fn list_offsets(&self, req: &ListOffsetsRequest) -> ListOffsetsResponse {
        let parts = req.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| {
            let offset = if p.timestamp == -2 { 0 } else { self.records };
            ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_offset(offset)
        });
        let t = ListOffsetsTopicResponse::default()
            .with_name(self.name())
            .with_partitions(parts.collect());
        ListOffsetsResponse::default().with_topics(vec![t])
    }

    /// Answers one connection until it closes.
    fn serve(&self, mut s: TcpStream, node: i32) -> Result<()> {
        loop {
            let mut prefix = [0u8; 4];
            if s.read_exact(&mut prefix).is_err() {
                return Ok(()); // the client closed
            }
            let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(prefix))?];
            s.read_exact(&mut body)?;
            if body.len() < 4 {
                bail!("short request");
            }
            let mut frame = Bytes::from(body);
            let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
                .map_err(|()| anyhow!("unknown api key"))?;
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let header = RequestHeader::decode(&mut frame, key.request_header_version(version))?;
            let mut out = BytesMut::new();
            out.extend_from_slice(&[0; 4]);
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, key.response_header_version(version))?;
            match key {
                ApiKey::ApiVersions => api_versions().encode(&mut out, version)?,
                ApiKey::Metadata => self.metadata().encode(&mut out, version)?,
                ApiKey::ListOffsets => {
                    let req = ListOffsetsRequest::decode(&mut frame, version)?;
                    self.list_offsets(&req).encode(&mut out, version)?
                }
                ApiKey::Produce => {
                    let req = ProduceRequest::decode(&mut frame, version)?;
                    self.produce(node, &req).encode(&mut out, version)?
                }
                ApiKey::Fetch => {
                    let req = FetchRequest::decode(&mut frame, version)?;
                    self.fetch(node, &req).encode(&mut out, version)?
                }
                other => bail!("unexpected {other:?}"),
            }
            let len = i32::try_from(out.len() - 4)?;
            out[..4].copy_from_slice(&len.to_be_bytes());
            s.write_all(&out)?;
        }
    }
}

fn api_versions() -> ApiVersionsResponse {
    let key = |k: ApiKey, min, max| {
        ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max)
    };
    ApiVersionsResponse::default().with_api_keys(vec![
        key(ApiKey::ApiVersions, 0, 3),
        key(ApiKey::Metadata, 0, 12),
        key(ApiKey::ListOffsets, 1, 7),
        key(ApiKey::Produce, 3, 10),
        key(ApiKey::Fetch, 4, 12),
    ])
}
