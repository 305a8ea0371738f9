//! Request decoding: one frame body (the bytes after the length prefix) in, one [`Request`] or
//! one [`DecodeError`] out.
//!
//! Order of the checks, each done before anything larger is looked at:
//! 1. the first 8 bytes — api key, api version, correlation id — are at the same place in every
//!    request header version, so they are read first and every later error carries the
//!    correlation id;
//! 2. the api key must be one kafka-protocol knows ([`DecodeError::UnknownApi`]) and this broker
//!    serves ([`DecodeError::UnsupportedApi`]), at a version it serves
//!    ([`DecodeError::UnsupportedVersion`]) — see [`versions::SUPPORTED`];
//! 3. the request header, at the header version the api version implies (v2 for flexible
//!    versions, v1 otherwise; ApiVersions v3+ is flexible);
//! 4. the body's array counts are checked against its length (module `preflight`), and only
//!    then does kafka-protocol decode the body.
//!
//! Contract: [`decode_request`] never panics and never allocates more than a small multiple of
//! the frame's size, whatever the bytes (a fuzz-style test feeds it random, truncated and
//! inflated requests). Strings and `records` in the result share the frame's buffer (no copy).
//! Bytes after the body are ignored, as Kafka does.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::preflight;
use crate::versions;

/// Bytes every request starts with: api key (int16), api version (int16), correlation id
/// (int32).
pub const REQUEST_PREFIX_BYTES: usize = 8;

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The request header; `request_api_version` and `correlation_id` are what the response
    /// must be encoded with.
    pub header: RequestHeader,
    /// The header's api key, known and served.
    pub api_key: ApiKey,
    /// The body; its variant always matches `api_key`.
    pub body: RequestKind,
}

impl Request {
    /// The api version the client used (the response is encoded at the same version).
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    /// The correlation id the response must carry.
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    /// False when Kafka sends no response at all: a Produce with `acks = 0`.
    pub fn expects_response(&self) -> bool {
        !matches!(&self.body, RequestKind::Produce(p) if p.acks == 0)
    }
}

/// Why a request could not be decoded. Every variant past [`DecodeError::TooShort`] carries the
/// correlation id, so the caller can answer (see
/// [`versions::answer_for_decode_error`]) or log before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the fixed start of every request header: nothing can be answered.
    #[error("request of {len} bytes is shorter than the {REQUEST_PREFIX_BYTES}-byte header start")]
    TooShort { len: usize },
    /// An api key kafka-protocol does not know.
    #[error("unknown api key {key} (version {version}, correlation id {correlation_id})")]
    UnknownApi { key: i16, version: i16, correlation_id: i32 },
    /// A known API this broker does not serve.
    #[error(
        "{api:?} (key {key}) is not served by this broker (version {version}, correlation id \
         {correlation_id})",
        key = *.api as i16
    )]
    UnsupportedApi { api: ApiKey, version: i16, correlation_id: i32 },
    /// A served API at a version outside `min..=max`. For ApiVersions, Kafka answers this with
    /// the list of versions instead of closing (KIP-511).
    #[error(
        "{api:?} v{version} is not supported: this broker serves v{min} to v{max} \
         (correlation id {correlation_id})"
    )]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16, correlation_id: i32 },
    /// The header or body does not decode at this version (or fails the bounds check).
    #[error(
        "malformed {api:?} v{version} request {part} (correlation id {correlation_id}): {reason}"
    )]
    Malformed {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        /// `"header"` or `"body"`.
        part: &'static str,
        reason: String,
    },
}

impl DecodeError {
    /// The request's correlation id, when at least the start of its header was there.
    pub fn correlation_id(&self) -> Option<i32> {
        match *self {
            DecodeError::TooShort { .. } => None,
            DecodeError::UnknownApi { correlation_id, .. }
            | DecodeError::UnsupportedApi { correlation_id, .. }
            | DecodeError::UnsupportedVersion { correlation_id, .. }
            | DecodeError::Malformed { correlation_id, .. } => Some(correlation_id),
        }
    }
}

/// Decodes one request from `frame`, the bytes after its length prefix (see
/// [`frame::frame_len`](crate::frame::frame_len)).
pub fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    let Some(start) = frame.first_chunk::<REQUEST_PREFIX_BYTES>() else {
        return Err(DecodeError::TooShort { len: frame.len() });
    };
    let key = i16::from_be_bytes([start[0], start[1]]);
    let version = i16::from_be_bytes([start[2], start[3]]);
    let correlation_id = i32::from_be_bytes([start[4], start[5], start[6], start[7]]);

    let Ok(api) = ApiKey::try_from(key) else {
        return Err(DecodeError::UnknownApi { key, version, correlation_id });
    };
    let Some((min, max)) = versions::supported(api) else {
        return Err(DecodeError::UnsupportedApi { api, version, correlation_id });
    };
    if !(min..=max).contains(&version) {
        return Err(DecodeError::UnsupportedVersion { api, version, min, max, correlation_id });
    }
    let malformed = |part, reason: String| DecodeError::Malformed {
        api,
        version,
        correlation_id,
        part,
        reason,
    };

    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| malformed("header", format!("{e:#}")))?;
    // The header decoder re-reads the first 8 bytes; they cannot have changed.
    debug_assert_eq!(
        (header.request_api_key, header.request_api_version, header.correlation_id),
        (key, version, correlation_id)
    );
    preflight::check_body(api, version, &buf).map_err(|e| malformed("body", e.to_string()))?;
    let body = RequestKind::decode(api, &mut buf, version)
        .map_err(|e| malformed("body", format!("{e:#}")))?;
    Ok(Request { header, api_key: api, body })
}
