//! The Kafka wire protocol of Odradek, as a pure codec: bytes in, bytes out.
//!
//! What it is: the layer between a connection's bytes and the broker's handlers. The node's
//! connection loop reads a 4-byte length prefix and asks [`frame::frame_len`] whether to read
//! the body at all; hands the body to [`request::decode_request`]; dispatches the resulting
//! [`Request`] (a [`RequestKind`] from the `kafka-protocol` crate) to its handlers; and turns
//! each handler's [`ResponseKind`] into a frame with [`response::encode_response`]. A request
//! that does not decode is either answered ([`versions::answer_for_decode_error`]: only an
//! ApiVersions request of a version we do not serve, as Kafka does) or closes the connection.
//! [`error_code`] holds the Kafka error codes the handlers send, and maps the storage engine's
//! errors onto them.
//!
//! What it guarantees:
//! - No input makes it panic, abort or allocate out of proportion to the input: lengths are
//!   checked before they are used, and array counts are checked against the bytes left before
//!   `kafka-protocol` allocates for them (module `preflight` explains why that is needed).
//! - One table, [`versions::SUPPORTED`], decides which APIs and versions are decoded, answered
//!   and advertised.
//! - Responses contain only what their handler set: no tagged field is ever written unless a
//!   handler sets it to a non-default value (old librdkafka cannot parse unexpected ones).
//!
//! What it deliberately does not know: sockets, async runtimes, shards, topics as metadata, or
//! where and how partitions are stored. It performs no I/O and holds no state; every function
//! is safe to call from any thread. (`odradek-storage` is a dependency only for its error types,
//! which [`error_code`] maps.)
//!
//! Modules: [`frame`] (length prefixes), [`request`] (decoding), `preflight` (allocation
//! bounds, crate-internal), [`response`] (encoding), [`fetch_response`] (the Fetch response
//! without its record bytes, so that they reach the socket without being copied into it),
//! [`versions`] (the served table and the ApiVersions answer), [`error_code`] (Kafka error
//! codes).
// `unsafe` is forbidden in the library; the tests' counting allocator (`tests::counting_alloc`)
// is the one exception, and is allowed only there.
#![cfg_attr(not(test), forbid(unsafe_code))]
#![cfg_attr(test, deny(unsafe_code))]

pub mod error_code;
pub mod fetch_response;
pub mod frame;
mod preflight;
pub mod request;
pub mod response;
pub mod versions;

pub use error_code::ErrorCode;
pub use frame::{FrameError, SOCKET_REQUEST_MAX_BYTES_DEFAULT, frame_len};
pub use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
pub use request::{DecodeError, Request, decode_request};
pub use response::{EncodeError, encode_response};

#[cfg(test)]
mod tests;
