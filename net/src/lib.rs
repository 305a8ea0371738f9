//! Kafka wire protocol server: framing, request decoding, per-API handlers.
//!
//! Not built yet: the node issue fills this crate. It will depend on `odradek-storage` and
//! never perform disk I/O itself.
#![forbid(unsafe_code)]
