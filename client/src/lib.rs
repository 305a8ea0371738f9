//! The Kafka client of Odradek: one client for the bench, the node's tests and the coming CLI.
//!
//! # How the pieces fit
//! - [`proto`] is the sans-I/O core: request framing and headers, version negotiation from an
//!   ApiVersions answer ([`proto::Versions::pick`]), response parsing with the correlation id
//!   checked. Pure functions and plain state; it never touches a socket.
//! - [`requests`] builds the requests the helpers send (Metadata, CreateTopics, ListOffsets,
//!   InitProducerId, Produce, Fetch) and reads their answers, also without I/O.
//! - [`admin`] does the same for the admin APIs the `odradek` CLI uses (DeleteTopics,
//!   CreatePartitions, DescribeConfigs, IncrementalAlterConfigs, ListGroups, DescribeGroups,
//!   DeleteGroups, FindCoordinator, OffsetFetch, OffsetCommit, DescribeCluster), answers read
//!   into plain Rust values.
//! - [`blocking`] is the one transport today: `std::net::TcpStream`, a [`blocking::Conn`] for one
//!   request at a time, split into a pipelined [`blocking::Writer`] and [`blocking::Reader`].
//! - [`routing`] is leader routing, also sans-I/O: [`routing::Routes`] (node id → address, and
//!   each partition's leader) from Metadata and from the KIP-951 hints of Produce and Fetch
//!   answers, which errors mean a stale route, and the bounded retry policy.
//! - [`cluster`] is a blocking client of one topic on many brokers: a connection per leader,
//!   each partition's request sent to its leader, leaders followed when they move.
//! - [`group`] is a classic consumer-group member over a blocking connection.
//! - [`partitioner`] is Kafka's murmur2 key partitioner.
//! - [`stages`] reads (and, for the node, writes) Odradek's latency breakdown, a tagged field
//!   of Produce and Fetch responses.
//! - Record batches are built and decoded by `odradek-records`, re-exported as [`records`].
//!
//! # The transport seam
//! A transport is a module beside [`blocking`] that moves bytes and nothing else: it encodes
//! with [`proto::encode_request`], reads a 4-byte prefix and checks it with
//! [`proto::frame_len`], and decodes with [`proto::decode_response`]. The compio (io_uring)
//! transport that the node's replica fetchers use is such a module (`compio`, behind the
//! feature of that name); nothing in [`proto`] or [`requests`] changed for it.
//!
//! # Guarantees
//! - Every response frame is bounded ([`proto::FRAME_BYTES_MAX`]) before it is read; every
//!   blocking read and write has a timeout ([`blocking::IO_TIMEOUT`]).
//! - A response is accepted only for the correlation id it answers.
//! - Errors are [`ClientError`]s that carry the API, version or Kafka error code involved.
//!
//! # What this crate does not know
//! Odradek's broker: it speaks Kafka to any broker, so the bench measures all brokers the same.
#![forbid(unsafe_code)]

pub mod admin;
pub mod blocking;
pub mod cluster;
#[cfg(feature = "compio")]
pub mod compio;
mod error;
pub mod group;
pub mod partitioner;
pub mod proto;
pub mod requests;
pub mod routing;
pub mod stages;

pub use error::{ClientError, Result, kafka_error_name};
pub use odradek_records as records;
