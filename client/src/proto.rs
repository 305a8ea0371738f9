//! The sans-I/O core: everything a transport needs to speak Kafka, as pure functions and plain
//! state. Framing (the 4-byte length prefix, bounded by [`FRAME_BYTES_MAX`]), request headers
//! and bodies (kafka-protocol's encoders), version negotiation ([`Versions`], from an
//! ApiVersions answer) and response parsing (correlation id checked). No sockets, no clocks:
//! a transport moves the bytes these functions produce and consume.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::error::{ClientError, Result};

/// Largest response frame accepted (bounds the read buffer).
pub const FRAME_BYTES_MAX: usize = 256 << 20;
/// Bytes of the length prefix of every request and response.
pub const FRAME_PREFIX_BYTES: usize = 4;
/// The client id sent when the caller names none.
pub const CLIENT_ID: &str = "odradek-client";
/// ApiVersions is asked at this version first ...
pub const API_VERSIONS_FIRST: i16 = 3;
/// ... and again at this one, on a new connection, if the broker refuses it (older brokers
/// answer an unknown version in v0 or close).
pub const API_VERSIONS_FALLBACK: i16 = 0;

/// Highest version of each API this client speaks (all name-based, before topic ids). Produce
/// v10 is v9 on the wire but for its answer's KIP-951 `current_leader`/`node_endpoints`, which
/// [`crate::routing`] follows; Fetch stays at v12 (v13+ names topics by id), whose answer
/// already carries `current_leader`.
pub fn our_max(key: ApiKey) -> i16 {
    match key {
        ApiKey::Produce => 10,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 7,
        ApiKey::Metadata => 12,
        ApiKey::CreateTopics => 7,
        ApiKey::InitProducerId => 4,
        ApiKey::ApiVersions => 3,
        ApiKey::FindCoordinator => 3,
        ApiKey::JoinGroup => 7,
        ApiKey::SyncGroup => 5,
        ApiKey::Heartbeat => 4,
        ApiKey::OffsetCommit => 8,
        ApiKey::OffsetFetch => 7,
        ApiKey::LeaveGroup => 2,
        ApiKey::DeleteTopics => 6,
        ApiKey::CreatePartitions => 3,
        ApiKey::DescribeConfigs => 4,
        ApiKey::IncrementalAlterConfigs => 1,
        ApiKey::ListGroups => 4,
        ApiKey::DescribeGroups => 5,
        ApiKey::DeleteGroups => 2,
        ApiKey::DescribeCluster => 1,
        _ => 0,
    }
}

/// The API versions both sides speak, from the broker's ApiVersions answer.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl Versions {
    /// The broker's ranges from its ApiVersions answer.
    ///
    /// # Errors
    ///
    /// [`ClientError::Broker`] if the answer carries an error code.
    pub fn from_response(resp: &ApiVersionsResponse) -> Result<Versions> {
        if resp.error_code != 0 {
            return Err(ClientError::broker("ApiVersions", resp.error_code));
        }
        let ranges =
            resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(Versions { ranges })
    }

    /// The broker's `(min, max)` of `api_key`, if it serves it.
    pub fn broker_range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&api_key).copied()
    }

    /// The highest version of `R` both sides support: the minimum of the broker's max, ours
    /// ([`our_max`]) and kafka-protocol's.
    ///
    /// # Errors
    ///
    /// [`ClientError::Unsupported`] if the broker does not serve `R`;
    /// [`ClientError::NoCommonVersion`] if the ranges do not meet.
    pub fn pick<R: Request>(&self) -> Result<i16> {
        let api = R::KEY;
        let key = ApiKey::try_from(api).map_err(|_| ClientError::Unsupported { api })?;
        let (broker_min, broker_max) =
            self.broker_range(api).ok_or(ClientError::Unsupported { api })?;
        let ours = broker_max.min(our_max(key)).min(R::VERSIONS.max);
        if ours < broker_min.max(R::VERSIONS.min) {
            return Err(ClientError::NoCommonVersion { api, broker_min, broker_max, ours });
        }
        Ok(ours)
    }
}

/// The ApiVersions request this client sends, naming itself.
pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("odradek-client"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
}

/// Encodes a request frame (length prefix, header, body) into `buf`, which is cleared first.
///
/// # Errors
///
/// [`ClientError::Encode`] if kafka-protocol cannot encode `req` at `version` (a field that
/// version lacks, for instance).
pub fn encode_request<R: Request>(
    buf: &mut BytesMut,
    client_id: &str,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<()> {
    let api = R::KEY;
    buf.clear();
    buf.extend_from_slice(&[0; FRAME_PREFIX_BYTES]);
    let header = RequestHeader::default()
        .with_request_api_key(api)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from(client_id.to_owned())));
    header
        .encode(buf, R::header_version(version))
        .and_then(|()| req.encode(buf, version))
        .map_err(|e| ClientError::Encode { api, version, reason: format!("{e:#}") })?;
    let len = buf.len() - FRAME_PREFIX_BYTES;
    let len = i32::try_from(len).map_err(|_| ClientError::Encode {
        api,
        version,
        reason: format!("{len} bytes"),
    })?;
    buf[..FRAME_PREFIX_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// The body length a response frame's 4-byte prefix announces.
///
/// # Errors
///
/// [`ClientError::NegativeFrame`], or [`ClientError::FrameTooLarge`] past [`FRAME_BYTES_MAX`].
pub fn frame_len(prefix: [u8; FRAME_PREFIX_BYTES]) -> Result<usize> {
    let len = i32::from_be_bytes(prefix);
    let len = usize::try_from(len).map_err(|_| ClientError::NegativeFrame { len })?;
    if len > FRAME_BYTES_MAX {
        return Err(ClientError::FrameTooLarge { len, max_bytes: FRAME_BYTES_MAX });
    }
    Ok(len)
}

/// Decodes a response frame (without its length prefix) of `R` at `version`, checking the
/// correlation id.
///
/// # Errors
///
/// [`ClientError::Decode`] for bytes that are not such a response;
/// [`ClientError::Correlation`] for the answer to another request.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    correlation_id: i32,
    version: i16,
) -> Result<R::Response>
where
    R::Response: HeaderVersion,
{
    let api = R::KEY;
    let decode_err = |reason: String| ClientError::Decode { api, version, reason };
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .map_err(|e| decode_err(format!("header: {e:#}")))?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::Correlation {
            expected: correlation_id,
            found: header.correlation_id,
        });
    }
    let resp =
        R::Response::decode(&mut frame, version).map_err(|e| decode_err(format!("{e:#}")))?;
    if frame.has_remaining() {
        tracing::debug!(api, version, trailing = frame.remaining(), "response has trailing bytes");
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest};

    fn versions(ranges: &[(ApiKey, i16, i16)]) -> Versions {
        let keys = ranges
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect();
        Versions::from_response(&ApiVersionsResponse::default().with_api_keys(keys))
            .expect("no error code")
    }

    #[test]
    fn pick_is_the_lowest_of_three_maxima() {
        let v =
            versions(&[(ApiKey::Produce, 3, 11), (ApiKey::Fetch, 4, 8), (ApiKey::Metadata, 0, 12)]);
        assert_eq!(v.pick::<ProduceRequest>().expect("produce"), 10, "ours caps it");
        assert_eq!(v.pick::<FetchRequest>().expect("fetch"), 8, "the broker caps it");
        assert_eq!(v.pick::<MetadataRequest>().expect("metadata"), 12);
    }

    #[test]
    fn pick_refuses_what_the_broker_lacks_or_ranges_that_do_not_meet() {
        let v = versions(&[(ApiKey::Produce, 11, 12)]);
        assert!(matches!(
            v.pick::<ProduceRequest>(),
            Err(ClientError::NoCommonVersion { broker_min: 11, ours: 10, .. })
        ));
        assert!(matches!(v.pick::<FetchRequest>(), Err(ClientError::Unsupported { api: 1 })));
    }

    #[test]
    fn a_request_frame_round_trips_and_its_prefix_counts_the_rest() {
        let mut buf = BytesMut::new();
        encode_request(&mut buf, "t", 42, 12, &MetadataRequest::default()).expect("encode");
        let len = frame_len([buf[0], buf[1], buf[2], buf[3]]).expect("len");
        assert_eq!(len, buf.len() - FRAME_PREFIX_BYTES);
    }

    #[test]
    fn frame_lengths_are_bounded() {
        assert!(matches!(frame_len((-1i32).to_be_bytes()), Err(ClientError::NegativeFrame { .. })));
        let over = (FRAME_BYTES_MAX as i32 + 1).to_be_bytes();
        assert!(matches!(frame_len(over), Err(ClientError::FrameTooLarge { .. })));
    }
}
