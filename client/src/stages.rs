//! Odradek's latency breakdown: where a Produce or Fetch spent its time on the broker, carried
//! in a tagged field of the response ([`STAGES_TAG`]).
//!
//! Tagged fields a client does not know are skipped by every Kafka client (KIP-482), so the
//! field costs other clients nothing but its bytes. Sans-I/O: this module only encodes and
//! decodes the field's value; the node fills it in and `odradek-bench` reads it.
//!
//! The value: one byte of format version ([`FORMAT`]), one byte naming the request kind
//! ([`Kind`]), one byte with the number of stages, then per stage its id (one byte, the
//! [`Stage`] discriminant) and its time in microseconds (an unsigned varint).

use bytes::{BufMut, Bytes, BytesMut};

/// The response tag that carries the breakdown (far above the tags Kafka assigns, which count
/// up from 0 per message).
pub const STAGES_TAG: i32 = 10_000;
/// The version of the value's layout.
pub const FORMAT: u8 = 1;

/// Which request the breakdown is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Produce = 0,
    Fetch = 1,
}

/// One stage of a request on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Reading the request off the socket after its first bytes arrived, and decoding it.
    Receive = 0,
    /// Handing the work to the partitions' owner shards and getting the answers back.
    Hop = 1,
    /// Checks before the log: acks, routing, batch header, keys of compacted topics.
    Validate = 2,
    /// The append: the log's own checks and the write to the page cache or the device.
    Write = 3,
    /// acks=all: waiting for the group-committed `fdatasync` that covers the batch.
    Fsync = 4,
    /// acks=all: waiting for every in-sync replica to have the batch.
    Replicate = 5,
    /// Fetch: reading records (the recent-batch cache or segment files).
    Read = 6,
    /// Fetch: the long poll, waiting for `min_bytes` or `max_wait_ms`.
    Wait = 7,
    /// Encoding the response and writing it to the socket (in histograms and trace lines
    /// only: the response cannot carry its own sending time).
    Send = 8,
}

impl Stage {
    /// Every stage, in discriminant order.
    pub const ALL: [Stage; 9] = [
        Stage::Receive,
        Stage::Hop,
        Stage::Validate,
        Stage::Write,
        Stage::Fsync,
        Stage::Replicate,
        Stage::Read,
        Stage::Wait,
        Stage::Send,
    ];

    /// The stages a request kind goes through, in the order they happen.
    pub fn of(kind: Kind) -> &'static [Stage] {
        match kind {
            Kind::Produce => &[
                Stage::Receive,
                Stage::Validate,
                Stage::Hop,
                Stage::Write,
                Stage::Fsync,
                Stage::Replicate,
                Stage::Send,
            ],
            Kind::Fetch => &[Stage::Receive, Stage::Hop, Stage::Read, Stage::Wait, Stage::Send],
        }
    }

    /// The stage's name, as in metric labels and the bench's table.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Receive => "receive",
            Stage::Hop => "hop",
            Stage::Validate => "validate",
            Stage::Write => "write",
            Stage::Fsync => "fsync",
            Stage::Replicate => "replicate",
            Stage::Read => "read",
            Stage::Wait => "wait",
            Stage::Send => "send",
        }
    }

    fn from_id(id: u8) -> Option<Stage> {
        Stage::ALL.get(usize::from(id)).copied()
    }
}

/// Encodes a breakdown: `(stage, microseconds)` pairs, at most 255.
pub fn encode(kind: Kind, stages: &[(Stage, u64)]) -> Bytes {
    let stages = &stages[..stages.len().min(usize::from(u8::MAX))];
    let mut out = BytesMut::with_capacity(3 + stages.len() * 4);
    out.put_u8(FORMAT);
    out.put_u8(kind as u8);
    out.put_u8(stages.len() as u8);
    for &(stage, micros) in stages {
        out.put_u8(stage as u8);
        let mut v = micros;
        while v >= 0x80 {
            out.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.put_u8(v as u8);
    }
    out.freeze()
}

/// Decodes a breakdown; `None` for a layout this client does not know or a malformed value
/// (the breakdown is advisory: a bad one is ignored, never an error).
pub fn decode(value: &[u8]) -> Option<(Kind, Vec<(Stage, u64)>)> {
    let (&format, rest) = value.split_first()?;
    if format != FORMAT {
        return None;
    }
    let (&kind, rest) = rest.split_first()?;
    let kind = match kind {
        0 => Kind::Produce,
        1 => Kind::Fetch,
        _ => return None,
    };
    let (&count, mut rest) = rest.split_first()?;
    let mut stages = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (&id, after) = rest.split_first()?;
        rest = after;
        let mut micros = 0u64;
        let mut shift = 0;
        loop {
            let (&b, after) = rest.split_first()?;
            rest = after;
            if shift > 63 {
                return None;
            }
            micros |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        stages.push((Stage::from_id(id)?, micros));
    }
    rest.is_empty().then_some((kind, stages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breakdown_survives_the_round_trip() {
        let stages = vec![(Stage::Receive, 3), (Stage::Write, 127), (Stage::Fsync, 1 << 40)];
        let value = encode(Kind::Produce, &stages);
        assert_eq!(decode(&value), Some((Kind::Produce, stages)));
    }

    #[test]
    fn malformed_values_are_ignored() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[2, 0, 0]), None, "unknown format");
        assert_eq!(decode(&[FORMAT, 9, 0]), None, "unknown kind");
        assert_eq!(decode(&[FORMAT, 0, 1, 3]), None, "a stage without its time");
        assert_eq!(decode(&[FORMAT, 0, 1, 99, 1]), None, "unknown stage");
        assert_eq!(decode(&[FORMAT, 0, 0, 7]), None, "trailing bytes");
        let endless = [FORMAT, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decode(&endless), None, "a varint past 64 bits");
    }
}
