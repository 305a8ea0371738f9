//! A Fetch response encoder that leaves the record bytes out, so that they can go to the
//! socket straight from where they are (a cache of recent batches, or a segment file) instead
//! of being copied into the response buffer.
//!
//! [`encode_fetch_response`] writes everything but the records: the frame is returned as
//! pieces, and on the wire piece `i` is followed by the records of the `i`-th partition of the
//! response (in topic, then partition order), the last piece by nothing. The length prefix
//! already counts the records, so the caller must send exactly `records_len` bytes for each.
//!
//! Layout per Kafka's `FetchResponse.json`, versions 4 to 16 (what [`SUPPORTED`] serves):
//! `throttle_time_ms` (v1+), `error_code` and `session_id` (v7+), then per topic its name
//! (to v12) or id (v13+), per partition `partition_index`, `error_code`, `high_watermark`,
//! `last_stable_offset` (v4+), `log_start_offset` (v5+), `aborted_transactions` (v4+,
//! nullable), `preferred_read_replica` (v11+) and `records` (nullable). From v12 the message is
//! flexible: compact strings, arrays and bytes, and an empty tagged-field section after each
//! structure: a partition's `diverging_epoch` (tag 0, KIP-320) and `current_leader` (tag 1,
//! KIP-951) and the response's `node_endpoints` (tag 0, v16+, KIP-951) are written when set;
//! the snapshot id is left at its default and so not written. Tests check every version against
//! kafka-protocol's decoder.
//!
//! [`SUPPORTED`]: crate::versions::SUPPORTED

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use uuid::Uuid;

use crate::frame::{self, LENGTH_PREFIX_BYTES};
use crate::response::EncodeError;
use crate::versions;

/// One partition of a Fetch response, with only the length of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOut {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `(producer_id, first_offset)` of aborted transactions; `None` writes a null array.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    pub preferred_read_replica: i32,
    /// Bytes of records that follow this partition's piece; `None` writes null records.
    pub records_len: Option<usize>,
    /// KIP-951's `current_leader` (leader id, leader epoch), tagged field 1 from v12: sent
    /// with NOT_LEADER_OR_FOLLOWER so the client need not refresh its metadata.
    pub current_leader: Option<(i32, i32)>,
    /// KIP-320's `diverging_epoch` (epoch, end offset), tagged field 0 from v12: a follower's
    /// last fetched epoch ends here on the leader, so it truncates before fetching again.
    pub diverging_epoch: Option<(i32, i64)>,
}

/// A broker's endpoint in KIP-951's `node_endpoints` (v16+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOut {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// One topic of a Fetch response: by name up to v12, by id from v13.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOut {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionOut>,
}

/// A Fetch response without its record bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchOut {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<TopicOut>,
    /// The leaders named in `current_leader`s (tagged field 0 from v16).
    pub node_endpoints: Vec<EndpointOut>,
    /// Odradek's latency breakdown (flexible versions: a tagged field with tag
    /// [`STAGES_TAG`], which other clients skip).
    pub stages: Option<Bytes>,
}

/// The response tag of Odradek's latency breakdown (see `odradek_client::stages`).
pub const STAGES_TAG: u64 = 10_000;

/// Encodes the frame of a Fetch response (`version`) to the request `correlation_id`, less the
/// records: see the module documentation for how the pieces and records interleave.
pub fn encode_fetch_response(
    correlation_id: i32,
    version: i16,
    response: &FetchOut,
) -> Result<Vec<Bytes>, EncodeError> {
    let api = ApiKey::Fetch;
    let Some((min, max)) = versions::supported(api) else {
        return Err(EncodeError::UnsupportedApi { api });
    };
    if !(min..=max).contains(&version) || version < 4 {
        return Err(EncodeError::UnsupportedVersion { api, version, min: min.max(4), max });
    }
    let flexible = version >= 12;
    let mut w =
        Writer { out: BytesMut::with_capacity(256), flexible, pieces: Vec::new(), records: 0 };
    w.out.put_slice(&[0; LENGTH_PREFIX_BYTES]);
    w.out.put_i32(correlation_id);
    if flexible {
        w.tags();
    }
    w.out.put_i32(response.throttle_time_ms);
    if version >= 7 {
        w.out.put_i16(response.error_code);
        w.out.put_i32(response.session_id);
    }
    w.array_len(response.topics.len())?;
    for t in &response.topics {
        if version >= 13 {
            w.out.put_slice(t.topic_id.as_bytes());
        } else {
            w.string(&t.name)?;
        }
        w.array_len(t.partitions.len())?;
        for p in &t.partitions {
            w.out.put_i32(p.partition_index);
            w.out.put_i16(p.error_code);
            w.out.put_i64(p.high_watermark);
            w.out.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.out.put_i64(p.log_start_offset);
            }
            match &p.aborted_transactions {
                None => w.null_array(),
                Some(list) => {
                    w.array_len(list.len())?;
                    for (producer_id, first_offset) in list {
                        w.out.put_i64(*producer_id);
                        w.out.put_i64(*first_offset);
                        if flexible {
                            w.tags();
                        }
                    }
                }
            }
            if version >= 11 {
                w.out.put_i32(p.preferred_read_replica);
            }
            w.records(p.records_len)?;
            if flexible {
                let count = usize::from(p.diverging_epoch.is_some())
                    + usize::from(p.current_leader.is_some());
                w.uvarint(count as u64);
                // Tagged fields in ascending tag order.
                if let Some((epoch, end_offset)) = p.diverging_epoch {
                    w.uvarint(0); // tag 0: DivergingEpoch
                    w.uvarint(13); // its size: int32, int64 and an empty tag section
                    w.out.put_i32(epoch);
                    w.out.put_i64(end_offset);
                    w.tags();
                }
                if let Some((id, epoch)) = p.current_leader {
                    w.uvarint(1); // tag 1: CurrentLeader
                    w.uvarint(9); // its size: two int32 and an empty tag section
                    w.out.put_i32(id);
                    w.out.put_i32(epoch);
                    w.tags();
                }
            }
        }
        if flexible {
            w.tags();
        }
    }
    let endpoints = version >= 16 && !response.node_endpoints.is_empty();
    let stages = response.stages.as_ref().filter(|_| flexible);
    if flexible {
        w.uvarint(u64::from(endpoints) + u64::from(stages.is_some()));
    }
    // Tagged fields in ascending tag order: NodeEndpoints (0), then the breakdown.
    if endpoints {
        let mut field = Writer { out: BytesMut::new(), flexible, pieces: Vec::new(), records: 0 };
        field.array_len(response.node_endpoints.len())?;
        for e in &response.node_endpoints {
            field.out.put_i32(e.node_id);
            field.string(&e.host)?;
            field.out.put_i32(e.port);
            match &e.rack {
                Some(r) => field.string(r)?,
                None => field.uvarint(0),
            }
            field.tags();
        }
        w.uvarint(0); // tag 0: NodeEndpoints
        w.uvarint(field.out.len() as u64);
        w.out.put_slice(&field.out);
    }
    if let Some(stages) = stages {
        w.uvarint(STAGES_TAG);
        w.uvarint(stages.len() as u64);
        w.out.put_slice(stages);
    }
    let Writer { mut out, mut pieces, records, .. } = w;
    let before: usize = pieces.iter().map(Bytes::len).sum();
    let len = before + out.len() + records - LENGTH_PREFIX_BYTES;
    let prefix = frame::length_prefix(len)?;
    match pieces.first_mut() {
        // The prefix sits at the start of the first piece.
        Some(first) => {
            let mut head = BytesMut::from(&first[..]);
            head[..LENGTH_PREFIX_BYTES].copy_from_slice(&prefix);
            *first = head.freeze();
        }
        None => out[..LENGTH_PREFIX_BYTES].copy_from_slice(&prefix),
    }
    pieces.push(out.freeze());
    Ok(pieces)
}

struct Writer {
    out: BytesMut,
    flexible: bool,
    /// Finished pieces: each ends where a partition's records go.
    pieces: Vec<Bytes>,
    records: usize,
}

impl Writer {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.put_u8(v as u8);
    }

    fn tags(&mut self) {
        self.uvarint(0);
    }

    fn array_len(&mut self, n: usize) -> Result<(), EncodeError> {
        let n32 = i32::try_from(n).map_err(|_| too_long("array", n))?;
        if self.flexible {
            self.uvarint(n as u64 + 1)
        } else {
            self.out.put_i32(n32)
        }
        Ok(())
    }

    fn null_array(&mut self) {
        if self.flexible { self.uvarint(0) } else { self.out.put_i32(-1) }
    }

    fn string(&mut self, s: &str) -> Result<(), EncodeError> {
        if self.flexible {
            self.uvarint(s.len() as u64 + 1);
        } else {
            let n = i16::try_from(s.len()).map_err(|_| too_long("string", s.len()))?;
            self.out.put_i16(n);
        }
        self.out.put_slice(s.as_bytes());
        Ok(())
    }

    /// The records' length, then a cut: the records go between this piece and the next.
    fn records(&mut self, len: Option<usize>) -> Result<(), EncodeError> {
        match len {
            None if self.flexible => self.uvarint(0),
            None => self.out.put_i32(-1),
            Some(n) => {
                let n32 = i32::try_from(n).map_err(|_| too_long("records", n))?;
                if self.flexible {
                    self.uvarint(n as u64 + 1)
                } else {
                    self.out.put_i32(n32)
                }
                self.records += n;
            }
        }
        let piece = self.out.split().freeze();
        self.pieces.push(piece);
        Ok(())
    }
}

fn too_long(part: &'static str, n: usize) -> EncodeError {
    EncodeError::Invalid {
        api: ApiKey::Fetch,
        version: -1,
        part,
        reason: format!("{n} does not fit the field's length"),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use kafka_protocol::messages::{FetchResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    use super::*;

    fn sample(records: &[&[u8]]) -> FetchOut {
        let part = |i: usize, r: Option<&[u8]>| PartitionOut {
            partition_index: i as i32,
            error_code: if i == 1 { 1 } else { 0 },
            high_watermark: 100 + i as i64,
            last_stable_offset: 100 + i as i64,
            log_start_offset: 7,
            aborted_transactions: (i == 2).then(|| vec![(5, 9)]),
            preferred_read_replica: -1,
            records_len: r.map(<[u8]>::len),
            current_leader: (i == 1).then_some((3, 0)),
            diverging_epoch: (i == 1).then_some((4, 1234)),
        };
        FetchOut {
            throttle_time_ms: 0,
            error_code: 0,
            session_id: 0,
            topics: vec![
                TopicOut {
                    name: "alpha".into(),
                    topic_id: Uuid::from_u128(0xabc),
                    partitions: vec![part(0, Some(records[0])), part(1, None)],
                },
                TopicOut {
                    name: "beta-topic".into(),
                    topic_id: Uuid::from_u128(0xdef),
                    partitions: vec![part(2, Some(records[1])), part(3, Some(records[2]))],
                },
            ],
            node_endpoints: vec![
                EndpointOut { node_id: 3, host: "127.0.0.4".into(), port: 9092, rack: None },
                EndpointOut { node_id: 4, host: "b4".into(), port: 9093, rack: Some("r".into()) },
            ],
            stages: Some(Bytes::from_static(&[1, 1, 2, 0, 5, 6, 0x80, 0x01])),
        }
    }

    #[test]
    fn every_version_decodes_as_kafka_protocol_reads_it() {
        let payloads: [&[u8]; 3] = [b"first-records", b"", &[9u8; 300]];
        let out = sample(&payloads);
        let with_records = [Some(payloads[0]), None, Some(payloads[1]), Some(payloads[2])];
        for version in 4..=16i16 {
            let pieces = encode_fetch_response(42, version, &out).expect("encode");
            assert_eq!(pieces.len(), 5, "one piece per partition, plus the tail");
            let mut wire = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                wire.extend_from_slice(piece);
                if let Some(Some(r)) = with_records.get(i) {
                    wire.extend_from_slice(r);
                }
            }
            let mut buf = Bytes::from(wire);
            let len = buf.get_i32() as usize;
            assert_eq!(len, buf.len(), "v{version}: the prefix counts the records");
            let header_version = ApiKey::Fetch.response_header_version(version);
            let header = ResponseHeader::decode(&mut buf, header_version).expect("header");
            assert_eq!(header.correlation_id, 42);
            let decoded = FetchResponse::decode(&mut buf, version).expect("body");
            assert!(buf.is_empty(), "v{version}: {} bytes left over", buf.len());
            let parts: Vec<_> = decoded.responses.iter().flat_map(|t| &t.partitions).collect();
            assert_eq!(parts.len(), 4);
            for (p, want) in parts.iter().zip(&with_records) {
                assert_eq!(
                    p.records.as_deref(),
                    *want,
                    "v{version} partition {}",
                    p.partition_index
                );
            }
            assert_eq!(parts[2].high_watermark, 102);
            assert_eq!(parts[1].error_code, 1);
            if version >= 5 {
                assert_eq!(parts[3].log_start_offset, 7);
            }
            let aborted = parts[2].aborted_transactions.as_ref().expect("aborted list");
            assert_eq!((aborted[0].producer_id.0, aborted[0].first_offset), (5, 9));
            assert!(parts[0].aborted_transactions.is_none());
            if version >= 12 {
                let leader = &parts[1].current_leader;
                assert_eq!((leader.leader_id.0, leader.leader_epoch), (3, 0), "v{version}");
                assert_eq!(parts[0].current_leader.leader_id.0, -1, "left at its default");
                let diverging = &parts[1].diverging_epoch;
                assert_eq!((diverging.epoch, diverging.end_offset), (4, 1234), "v{version}");
                assert_eq!(parts[0].diverging_epoch.epoch, -1, "left at its default");
            }
            if version >= 16 {
                let e: Vec<_> = decoded
                    .node_endpoints
                    .iter()
                    .map(|e| {
                        (
                            e.node_id.0,
                            e.host.to_string(),
                            e.port,
                            e.rack.as_deref().map(str::to_owned),
                        )
                    })
                    .collect();
                assert_eq!(
                    e,
                    vec![
                        (3, "127.0.0.4".into(), 9092, None),
                        (4, "b4".into(), 9093, Some("r".into()))
                    ]
                );
            }
            if version >= 12 {
                let tag = i32::try_from(STAGES_TAG).expect("tag");
                let stages = decoded.unknown_tagged_fields.get(&tag).map(|b| b.to_vec());
                assert_eq!(stages, Some(vec![1, 1, 2, 0, 5, 6, 0x80, 0x01]), "v{version}");
            }
            if version >= 13 {
                assert_eq!(decoded.responses[1].topic_id, Uuid::from_u128(0xdef));
            } else {
                assert_eq!(&*decoded.responses[1].topic.0, "beta-topic");
            }
        }
    }

    #[test]
    fn unserved_versions_are_refused() {
        let out = FetchOut::default();
        assert!(encode_fetch_response(1, 3, &out).is_err());
        assert!(encode_fetch_response(1, 17, &out).is_err());
        let empty = encode_fetch_response(1, 12, &out).expect("empty response");
        assert_eq!(empty.len(), 1, "no partitions: one piece");
    }
}
