//! `--compression` on the command line and in the JSON summary: `odradek_records::Codec` by
//! Kafka's `compression.type` names (the one codec enum; this is only its CLI spelling).

use clap::builder::{PossibleValuesParser, TypedValueParser};
use odradek_records::Codec;

/// The clap parser: the five names, listed in `--help`.
pub fn parser() -> impl TypedValueParser<Value = Codec> {
    PossibleValuesParser::new(Codec::ALL.map(Codec::name)).try_map(|s| s.parse::<Codec>())
}

/// Serializes a codec as its name.
pub fn serialize<S: serde::Serializer>(codec: &Codec, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(codec.name())
}
