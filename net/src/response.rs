//! Response encoding: one response body in, one complete frame (length prefix, response header,
//! body) appended to the caller's buffer.
//!
//! Contracts of [`encode_response`]:
//! - it appends exactly one frame to `out`, or, on any error, leaves `out` as it was;
//! - the response header version is the one Kafka pairs with the api version (v1 — with a
//!   tagged-field section — for flexible versions, v0 otherwise; ApiVersions always v0, because
//!   a client must read it before it knows what the broker speaks);
//! - it only encodes APIs and versions listed in [`versions::SUPPORTED`], with a body of the
//!   same API: anything else is a bug in the caller, returned as an error;
//! - a frame longer than `i32::MAX` bytes is refused;
//! - a null in a field that the version cannot carry as null is refused, though kafka-protocol
//!   would write it (JoinGroup's `protocol_name` below v7).

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::frame::{self, FrameError, LENGTH_PREFIX_BYTES};
use crate::versions;

/// Why a response could not be encoded. Nothing was appended to the output buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The API is not one this broker serves.
    #[error("{api:?} is not served by this broker")]
    UnsupportedApi { api: ApiKey },
    /// The body is the response of another API (`None`: of one this broker does not serve).
    #[error("a {body:?} response body cannot answer a {api:?} request")]
    BodyMismatch { api: ApiKey, body: Option<ApiKey> },
    /// The version is outside the range this broker serves for the API.
    #[error("{api:?} v{version} is outside the served range v{min} to v{max}")]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16 },
    /// kafka-protocol refused to encode the header or body at this version; typically a field
    /// was set to a non-default value that this version does not have. Also a null this version
    /// cannot carry, which kafka-protocol would have written.
    #[error("encoding the {api:?} v{version} response {part}: {reason}")]
    Invalid { api: ApiKey, version: i16, part: &'static str, reason: String },
    /// The encoded response does not fit a frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Appends the response to a request (`correlation_id`, `api_key`, `version` as the request
/// had them) to `out` as one frame: 4-byte length, response header, body.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let Some((min, max)) = versions::supported(api_key) else {
        return Err(EncodeError::UnsupportedApi { api: api_key });
    };
    let body_api = response_api(body);
    if body_api != Some(api_key) {
        return Err(EncodeError::BodyMismatch { api: api_key, body: body_api });
    }
    if !(min..=max).contains(&version) {
        return Err(EncodeError::UnsupportedVersion { api: api_key, version, min, max });
    }
    if let Some(reason) = unwritable_null(body, version) {
        return Err(EncodeError::Invalid { api: api_key, version, part: "body", reason });
    }
    let start = out.len();
    let result = encode_frame_at(start, correlation_id, api_key, version, body, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_frame_at(
    start: usize,
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    // `{:#}` prints kafka-protocol's error with its whole context chain.
    let invalid = |part, e: &dyn std::fmt::Display| EncodeError::Invalid {
        api: api_key,
        version,
        part,
        reason: format!("{e:#}"),
    };
    out.put_slice(&[0; LENGTH_PREFIX_BYTES]);
    let header_version = api_key.response_header_version(version);
    debug_assert_eq!(header_version, body.header_version(version));
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, header_version)
        .map_err(|e| invalid("header", &e))?;
    body.encode(out, version).map_err(|e| invalid("body", &e))?;
    let len = out.len() - start - LENGTH_PREFIX_BYTES;
    let prefix = frame::length_prefix(len)?;
    out[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&prefix);
    Ok(())
}

/// A null that kafka-protocol would write where this version's schema allows none (it does not
/// check `nullableVersions` when encoding), and that clients then fail to read. Only one such
/// field exists among the served responses: JoinGroup's `protocol_name`, nullable from v7
/// (KIP-559); below v7, Kafka sends an empty string instead.
fn unwritable_null(body: &ResponseKind, version: i16) -> Option<String> {
    match body {
        ResponseKind::JoinGroup(r) if version < 7 && r.protocol_name.is_none() => {
            Some("protocol_name is null, which JoinGroup allows only from v7".to_owned())
        }
        _ => None,
    }
}

/// The API a response body answers, among those this broker serves.
fn response_api(body: &ResponseKind) -> Option<ApiKey> {
    match body {
        ResponseKind::ApiVersions(_) => Some(ApiKey::ApiVersions),
        ResponseKind::Metadata(_) => Some(ApiKey::Metadata),
        ResponseKind::Produce(_) => Some(ApiKey::Produce),
        ResponseKind::Fetch(_) => Some(ApiKey::Fetch),
        ResponseKind::ListOffsets(_) => Some(ApiKey::ListOffsets),
        ResponseKind::CreateTopics(_) => Some(ApiKey::CreateTopics),
        ResponseKind::DeleteTopics(_) => Some(ApiKey::DeleteTopics),
        ResponseKind::DescribeConfigs(_) => Some(ApiKey::DescribeConfigs),
        ResponseKind::IncrementalAlterConfigs(_) => Some(ApiKey::IncrementalAlterConfigs),
        ResponseKind::AlterConfigs(_) => Some(ApiKey::AlterConfigs),
        ResponseKind::CreatePartitions(_) => Some(ApiKey::CreatePartitions),
        ResponseKind::DeleteRecords(_) => Some(ApiKey::DeleteRecords),
        ResponseKind::OffsetForLeaderEpoch(_) => Some(ApiKey::OffsetForLeaderEpoch),
        ResponseKind::DescribeCluster(_) => Some(ApiKey::DescribeCluster),
        ResponseKind::FindCoordinator(_) => Some(ApiKey::FindCoordinator),
        ResponseKind::InitProducerId(_) => Some(ApiKey::InitProducerId),
        ResponseKind::OffsetCommit(_) => Some(ApiKey::OffsetCommit),
        ResponseKind::OffsetFetch(_) => Some(ApiKey::OffsetFetch),
        ResponseKind::JoinGroup(_) => Some(ApiKey::JoinGroup),
        ResponseKind::Heartbeat(_) => Some(ApiKey::Heartbeat),
        ResponseKind::LeaveGroup(_) => Some(ApiKey::LeaveGroup),
        ResponseKind::SyncGroup(_) => Some(ApiKey::SyncGroup),
        ResponseKind::DescribeGroups(_) => Some(ApiKey::DescribeGroups),
        ResponseKind::ListGroups(_) => Some(ApiKey::ListGroups),
        ResponseKind::DeleteGroups(_) => Some(ApiKey::DeleteGroups),
        ResponseKind::OffsetDelete(_) => Some(ApiKey::OffsetDelete),
        ResponseKind::DescribeQuorum(_) => Some(ApiKey::DescribeQuorum),
        ResponseKind::UnregisterBroker(_) => Some(ApiKey::UnregisterBroker),
        ResponseKind::ElectLeaders(_) => Some(ApiKey::ElectLeaders),
        ResponseKind::AlterPartitionReassignments(_) => Some(ApiKey::AlterPartitionReassignments),
        ResponseKind::ListPartitionReassignments(_) => Some(ApiKey::ListPartitionReassignments),
        ResponseKind::DescribeLogDirs(_) => Some(ApiKey::DescribeLogDirs),
        ResponseKind::SaslHandshake(_) => Some(ApiKey::SaslHandshake),
        ResponseKind::SaslAuthenticate(_) => Some(ApiKey::SaslAuthenticate),
        ResponseKind::CreateAcls(_) => Some(ApiKey::CreateAcls),
        ResponseKind::DescribeAcls(_) => Some(ApiKey::DescribeAcls),
        ResponseKind::DeleteAcls(_) => Some(ApiKey::DeleteAcls),
        ResponseKind::DescribeUserScramCredentials(_) => Some(ApiKey::DescribeUserScramCredentials),
        ResponseKind::AlterUserScramCredentials(_) => Some(ApiKey::AlterUserScramCredentials),
        ResponseKind::DescribeClientQuotas(_) => Some(ApiKey::DescribeClientQuotas),
        ResponseKind::AlterClientQuotas(_) => Some(ApiKey::AlterClientQuotas),
        ResponseKind::AddPartitionsToTxn(_) => Some(ApiKey::AddPartitionsToTxn),
        ResponseKind::AddOffsetsToTxn(_) => Some(ApiKey::AddOffsetsToTxn),
        ResponseKind::EndTxn(_) => Some(ApiKey::EndTxn),
        ResponseKind::TxnOffsetCommit(_) => Some(ApiKey::TxnOffsetCommit),
        ResponseKind::WriteTxnMarkers(_) => Some(ApiKey::WriteTxnMarkers),
        ResponseKind::DescribeTransactions(_) => Some(ApiKey::DescribeTransactions),
        ResponseKind::ListTransactions(_) => Some(ApiKey::ListTransactions),
        _ => None,
    }
}
